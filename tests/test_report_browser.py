"""Headless Chromium: the sweep report renders (tables and images), and the MLflow UI shows a sweep.

Chromium is Debian's `chromium` package; when /usr/bin/chromium is missing the module installs it
with `apt-get update && apt-get install -y chromium` (skipped, with the reason, when that fails).
Screenshots are kept under $TGL_BROWSER_SHOTS when it is set (to look at them), else in tmp_path.

1. `transgan-lab report` (the console script) writes the HTML of a sweep logged into the session's
   real MLflow server; Chromium loads it from disk (`--dump-dom` after the inline script marks the
   images decoded, `--screenshot`), and the test checks the table rows, every image's
   naturalWidth > 0 and that the screenshot is not blank (pixel variance, PIL).
2. The MLflow UI of that server, driven over the DevTools protocol on 127.0.0.1 (aiohttp, which
   ray[default] brings): the experiment's runs table shows the sweep parent; expanding it shows
   every trial nested under it (tree level 1); the compare view of the trials shows their params.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import analysis_runs as R
import pytest
from conftest import stop_process

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
EXPERIMENT = "browser-sweep"
SWEEP_ID = "ui-sweep"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        r = subprocess.run(
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium",
            shell=True,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if r.returncode != 0 or not CHROMIUM.exists():
            pytest.skip(
                f"headless Chromium unavailable: `apt-get install -y chromium` failed ({(r.stderr or r.stdout)[-400:]})"
            )
    return CHROMIUM


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = (
        Path(os.environ["TGL_BROWSER_SHOTS"])
        if os.environ.get("TGL_BROWSER_SHOTS")
        else tmp_path_factory.mktemp("shots")
    )
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def sweep(mlflow_server):
    """A sweep parent with nested trials (params, metrics at step = nimg, sample images) on the real server."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        R.log_sweep(client, EXPERIMENT, SWEEP_ID)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.`transgan.sweep_id` = '{SWEEP_ID}'")
    ids = {r.info.run_name: r.info.run_id for r in runs}
    return {"uri": mlflow_server.uri, "exp_id": exp_id, "ids": ids, "parent": ids[SWEEP_ID]}


def _chromium(args: list[str], profile: Path, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        start_new_session=True,
    )


def render_report(sweep_id: str, uri: str, out: Path, profile: Path) -> tuple[str, str, int]:
    """`transgan-lab report` (the console script) for ``sweep_id``, then Chromium's DOM of it once
    every image has decoded: (html, dom, number of images)."""
    cli = Path(sys.executable).parent / "transgan-lab"
    r = subprocess.run(
        [str(cli), "report", sweep_id, "--tracking-uri", uri, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    html = out.read_text()
    n_img = html.count("<img ")
    assert 'src="http' not in html  # images inlined
    dom = _chromium(["--virtual-time-budget=15000", "--dump-dom", out.as_uri()], profile).stdout
    assert f'data-images-loaded="{n_img}/{n_img}"' in dom, dom[:500]
    return html, dom, n_img


def test_report_renders_in_chromium(chromium, sweep, shots, tmp_path):
    from PIL import Image, ImageStat

    out = tmp_path / "report.html"
    html, dom, n_img = render_report(SWEEP_ID, sweep["uri"], out, tmp_path / "p1")
    assert n_img >= 5 and "<link" not in html  # self-contained
    assert re.search(rf'id="tgl-render-status"[^>]*>images-ok {n_img}/{n_img}<', dom)
    rows = re.findall(r'<tr class="row">(.*?)</tr>', dom, flags=re.S)
    assert len(rows) == 5  # the five scored trials; the failed one is not ranked
    assert [re.findall(r"<td[^>]*>(.*?)</td>", row)[1] for row in rows] == [
        f"{SWEEP_ID}-t{t}" for t in ("002", "000", "003", "001", "004")
    ]
    assert "<strong>15.50</strong>" in rows[0]  # the best digits-FID is bold
    # The curves draw the top 3 BY RANK thicker (trial order would be t000, t001, t002) and every
    # curve's caption names the same trials, best first, as the table's first three rows.
    top3 = [re.findall(r"<td[^>]*>(.*?)</td>", row)[1] for row in rows[:3]]
    curves = re.findall(r'<figure class="curves" data-highlight="([^"]*)">.*?<figcaption>(.*?)</figcaption>', dom, re.S)
    assert len(curves) >= 2, dom[:2000]
    for highlight, caption in curves:
        assert highlight.split(",") == top3, (highlight, top3)
        assert caption.endswith(f"best first: {', '.join(top3)}."), caption
    # importances from 5 scored trials of 2 params (>= max(5, 2 x 2)), with the caveat beside them
    assert "with 5 trials for 2 params it is a rough ranking" in dom

    shot = shots / "report.png"
    _chromium(
        ["--window-size=1280,2600", "--virtual-time-budget=15000", f"--screenshot={shot}", out.as_uri()],
        tmp_path / "p2",
    )
    with Image.open(shot) as im:
        assert im.size == (1280, 2600)
        grey = im.convert("L")
        stat = ImageStat.Stat(grey)
        assert stat.stddev[0] > 20, f"screenshot looks blank (pixel std {stat.stddev[0]:.1f})"
        non_white = sum(grey.point(lambda v: 255 if v < 200 else 0).histogram()[255:])
        assert non_white / (im.size[0] * im.size[1]) > 0.02
        colours = im.convert("RGB").resize((320, 650)).getcolors(maxcolors=1_000_000)
        assert len(colours) > 200  # figures and sample grids, not just text


def test_readme_screenshot_script_draws_the_table_and_the_report(chromium, sweep, tmp_path):
    """docs/screenshots.py (how README's two pictures are made) on the session's real sweep store."""
    from PIL import Image, ImageStat

    cli = Path(sys.executable).parent / "transgan-lab"
    table = subprocess.run(
        [str(cli), "table", "sweep", "--tracking-uri", sweep["uri"], "--sweep", SWEEP_ID],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.rstrip("\n").split("\n")
    script = Path(__file__).resolve().parents[1] / "docs" / "screenshots.py"
    argv = [sys.executable, str(script), "--tracking-uri", sweep["uri"], "--sweep", SWEEP_ID, "--out", str(tmp_path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == f"wrote {tmp_path / 'sweep-table.png'} and {tmp_path / 'report.png'}"
    with Image.open(tmp_path / "sweep-table.png") as im:
        # one terminal row per table line plus the prompt, every line in the width
        assert im.size == (int(40 + 8.45 * max(map(len, lines))), int(40 + 19 * (len(lines) + 1)))
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 10, "the table screenshot looks blank"
    with Image.open(tmp_path / "report.png") as im:
        assert im.size == (1280, 2400)
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 20, "the report screenshot looks blank"
        assert len(im.convert("RGB").resize((320, 600)).getcolors(maxcolors=1_000_000)) > 200


# --------------------------------------------------------------------------- MLflow UI


async def _drive_ui(port: int, sweep: dict, shot: Path) -> tuple[dict, dict]:
    """Open the experiment page, expand the sweep parent, then the compare view of the trials."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            page = next(t for t in await resp.json() if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            counter = iter(range(1, 10**9))

            async def call(method: str, **params):
                my = next(counter)
                await ws.send_json({"id": my, "method": method, "params": params})
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data.get("id") == my:
                        if "error" in data:
                            raise RuntimeError(f"{method}: {data['error']}")
                        return data["result"]
                raise RuntimeError("DevTools connection closed")

            async def evaluate(expr: str):
                res = await call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
                return res["result"].get("value")

            async def wait_for(expr: str, what: str, timeout_s: float = 120):
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    if await evaluate(expr):
                        return
                    await asyncio.sleep(0.5)
                text = await evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise AssertionError(f"MLflow UI: {what} did not appear within {timeout_s} s; page text: {text}")

            await call("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=f"{sweep['uri']}/#/experiments/{sweep['exp_id']}/runs")
            parent_row = f'[row-id="{sweep["parent"]}"]'
            await wait_for(f"!!document.querySelector('{parent_row}')", "the sweep parent row")
            # the parent's expander (+) sits in its Run Name cell
            clicked = await evaluate(
                f"(() => {{ const b = document.querySelector('{parent_row} [col-id*=\"Run Name\"] button');"
                " if (!b) return false; b.click(); return true; })()"
            )
            assert clicked, "no expander button in the sweep parent's Run Name cell (runs are not nested)"
            child_ids = [v for v in sweep["ids"].values() if v != sweep["parent"]]
            await wait_for(
                " && ".join(f"!!document.querySelector('[row-id=\"{i}\"]')" for i in child_ids), "the nested trial rows"
            )
            await asyncio.sleep(1.0)
            # where each run's name link is drawn: nested runs are indented under their parent
            layout = await evaluate(
                "(() => { const out = {}; for (const row of document.querySelectorAll('[row-id]')) {"
                " const a = row.querySelector('[col-id*=\"Run Name\"] a'); if (!a) continue;"
                " const r = a.getBoundingClientRect();"
                " out[row.getAttribute('row-id')] = {name: a.innerText.trim(), left: r.left, top: r.top}; }"
                " return out; })()"
            )
            shot.write_bytes(base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"]))

            runs = json.dumps(child_ids)
            await call(
                "Page.navigate",
                url=f"{sweep['uri']}/#/compare-runs?runs={runs}&experiments={json.dumps([sweep['exp_id']])}",
            )
            await wait_for("document.body.innerText.includes('optim.lr_g')", "the compare view's params")
            await asyncio.sleep(1.0)
            # the compare view's tables: first cell (a label or a param key) -> the cells per run
            compare = await evaluate(
                "(() => { const out = {}; for (const tr of document.querySelectorAll('tr')) {"
                " const cells = [...tr.querySelectorAll('th,td')].map(c => c.innerText.trim());"
                " if (cells.length > 1) out[cells[0]] = cells.slice(1); } return out; })()"
            )
            shot.with_name("mlflow-compare.png").write_bytes(
                base64.b64decode(
                    (await call("Page.captureScreenshot", format="png", captureBeyondViewport=False))["data"]
                )
            )
            return layout, compare


def mlflow_ui_views(chromium: Path, sweep: dict, shot: Path, tmp_path: Path) -> tuple[dict, dict]:
    """Drive a fresh headless Chromium through the MLflow UI of ``sweep``: (runs layout, compare view)."""
    profile = tmp_path / "profile"
    log = open(tmp_path / "chromium.log", "wb")
    proc = subprocess.Popen(
        [
            str(chromium),
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--window-size=1600,1000",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(_drive_ui(port, sweep, shot))
    finally:
        stop_process(proc)
        log.close()


def test_mlflow_ui_nests_trials_under_the_sweep_with_params(chromium, sweep, shots, tmp_path):
    layout, compare = mlflow_ui_views(chromium, sweep, shots / "mlflow-runs.png", tmp_path)

    # the parent row first, every trial below it and indented further (nested under the sweep)
    parent = layout[sweep["parent"]]
    assert parent["name"] == SWEEP_ID
    for name, rid in sweep["ids"].items():
        if name != SWEEP_ID:
            child = layout[rid]
            assert child["name"] == name
            assert child["top"] > parent["top"] and child["left"] > parent["left"] + 10, (name, child, parent)
    # the compare view lists the trials with their params (dotted keys, the searched values)
    names = compare["Run Name:"]
    assert sorted(names) == sorted(f"{SWEEP_ID}-{t[0]}" for t in R.SWEEP_TRIALS)
    expected = {f"{SWEEP_ID}-{trial}": (lr, emb) for trial, lr, emb, *_ in R.SWEEP_TRIALS}
    for i, name in enumerate(names):
        lr, emb = expected[name]
        assert float(compare["optim.lr_g"][i]) == lr and int(compare["model.g.embed_dim"][i]) == emb
