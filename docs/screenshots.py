"""README screenshots from a real sweep store: the HTML report and the terminal table.

    python docs/screenshots.py --tracking-uri sqlite:///runs/mlflow.db [--sweep ID] [--out DIR]

Writes report.png (the report as headless Chromium draws it) and sweep-table.png (what
`transgan-lab table sweep` prints, drawn as a terminal would) into DIR, by default docs/. Needs
/usr/bin/chromium (Debian's `chromium` package).
"""

from __future__ import annotations

import argparse
import html
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def shoot(page: Path, png: Path, *, width: int, height: int, profile: Path) -> None:
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=15000",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", required=True, help="the sweep's MLflow store")
    ap.add_argument("--sweep", help="sweep id (default: the newest sweep in the store)")
    ap.add_argument("--out", type=Path, default=DOCS, help="folder of the two PNGs (default: docs/)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).parent / "transgan-lab"
    sweep = ["--sweep", args.sweep] if args.sweep else []
    table = subprocess.run(
        [str(cli), "table", "sweep", "--tracking-uri", args.tracking_uri, *sweep],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        term = tmp / "table.html"
        lines = table.rstrip("\n").split("\n")
        term.write_text(
            "<html><body style='margin:0;background:#1e1e1e'><pre style='margin:0;padding:14px;"
            "color:#e6e6e6;font:14px/1.35 DejaVu Sans Mono,monospace'>"
            f"$ transgan-lab table sweep\n{html.escape(table)}</pre></body></html>"
        )
        width = 40 + 8.45 * max(len(line) for line in lines)
        shoot(
            term,
            args.out / "sweep-table.png",
            width=int(width),
            height=int(40 + 19 * (len(lines) + 1)),
            profile=tmp / "p1",
        )
        report = tmp / "report.html"
        subprocess.run(
            [
                str(cli),
                "report",
                *([args.sweep] if args.sweep else []),
                "--tracking-uri",
                args.tracking_uri,
                "--out",
                str(report),
            ],
            check=True,
            capture_output=True,
        )
        shoot(report, args.out / "report.png", width=1280, height=2400, profile=tmp / "p2")
    print(f"wrote {args.out / 'sweep-table.png'} and {args.out / 'report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
