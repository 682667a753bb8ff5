"""Tables in five formats: terminal, Markdown, LaTeX, HTML, CSV. The best of our rows per metric
column is marked (LaTeX `\\textbf`, Markdown `**`, HTML `<strong>`, terminal `*`); unverified
published values carry `†`.
"""

from __future__ import annotations

import csv
import html
import io
import textwrap
from collections.abc import Sequence

from transgan_lab.analysis import baselines
from transgan_lab.analysis.load import AnalysisError
from transgan_lab.analysis.tables.model import Cell, Column, Table

FORMATS = ("terminal", "markdown", "latex", "html", "csv")
TERMINAL_BEST = "*"


def _num(v: float | None, digits: int) -> str:
    return "—" if v is None else f"{v:,.{digits}f}" if abs(v) >= 1e4 else f"{v:.{digits}f}"


def _cell_parts(c: Cell, col: Column) -> tuple[str, str, str]:
    """(main text, ± part, suffix) of a cell, format-neutral."""
    if col.kind == "text":
        return (c.text if c.text is not None else "—", "", "")
    if col.kind == "number":
        return (_num(c.value, col.digits), "", "")
    if c.value is None:
        return ("—", "", "")
    pm = _num(c.std, col.digits) if c.std is not None else ""
    suffix = f" (n={c.n})" if (c.n is not None and c.n_row is not None and c.n < c.n_row) else ""
    return (_num(c.value, col.digits), pm, suffix)


def _plain(c: Cell, col: Column, *, pm: str = " ± ", mark: str = baselines.UNVERIFIED_MARK) -> str:
    main, std, suffix = _cell_parts(c, col)
    s = main + (pm + std if std else "") + suffix
    return s + (mark if c.unverified else "") + (" ≈" if c.tie else "")


TERMINAL_WIDTH = 120  # columns a terminal table fits in (columns left out, notes wrapped)


def _terminal_body(table: Table, columns: list[Column]) -> list[str]:
    from tabulate import tabulate

    headers = [c.label for c in columns]
    align = ["left" if c.kind == "text" else "right" for c in columns]
    out = []
    for s in table.sections:
        body = [
            [_plain(r.get(c.key, Cell()), c) + (TERMINAL_BEST if r.get(c.key, Cell()).bold else "") for c in columns]
            for r in s.rows
        ]
        out += [
            "",
            f"{s.label}:",
            tabulate(body, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True),
        ]
    return out


def render_terminal(table: Table, *, width: int = TERMINAL_WIDTH) -> str:
    """The table in plain text. Wider than ``width``: the columns of ``table.drop_order`` are left out,
    first the first, until it fits, and a note names them; notes wrap at ``width``."""
    columns = list(table.columns)
    body = _terminal_body(table, columns)
    dropped: list[str] = []
    for key in table.drop_order:
        if max(len(line) for line in "\n".join(body).splitlines()) <= width:
            break
        col = next((c for c in columns if c.key == key), None)
        if col is None or len(columns) <= 1:
            continue
        columns.remove(col)
        dropped.append(col.label)
        body = _terminal_body(table, columns)
    notes = [n.replace("bold =", f"{TERMINAL_BEST} =") for n in table.notes]
    if dropped:
        notes.append(
            f"not shown, to fit {width} columns (least important first): {', '.join(dropped)}; "
            "--verbose or --format markdown/html/csv show every column"
        )
    out = [table.title, "=" * min(len(table.title), width), *body, ""]
    for n in notes:
        out += textwrap.wrap(n, width=width, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(out) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def render_markdown(table: Table) -> str:
    out = [f"### {_md_escape(table.title)}", ""]
    headers = [_md_escape(c.label) for c in table.columns]
    seps = [":---" if c.kind == "text" else "---:" for c in table.columns]
    for s in table.sections:
        out += [f"**{_md_escape(s.label)}**", "", "| " + " | ".join(headers) + " |", "| " + " | ".join(seps) + " |"]
        for r in s.rows:
            cells = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                text = _md_escape(_plain(cell, c))
                cells.append(f"**{text}**" if cell.bold else text)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += [f"- {_md_escape(n)}" for n in table.notes]
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "--",
    "†": r"$^\dagger$",
    "×": r"$\times$",
    "≈": r"$\approx$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "λ": r"$\lambda$",
    "γ": r"$\gamma$",
    "β": r"$\beta$",
}


def _tex(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)


def render_latex(table: Table) -> str:
    spec = "".join("l" if c.kind == "text" else "r" for c in table.columns)
    ncol = len(table.columns)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(table.title)}}}",
        rf"\label{{tab:{_tex(table.key)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_tex(c.label) for c in table.columns) + r" \\",
    ]
    for s in table.sections:
        out += [r"\midrule", rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{_tex(s.label)}}}}} \\"]
        for r in s.rows:
            cells = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                main, std, suffix = _cell_parts(cell, c)
                text = _tex(main) + (r" $\pm$ " + _tex(std) if std else "") + _tex(suffix)
                if cell.unverified:
                    text += r"$^\dagger$"
                if cell.tie:
                    text += r" $\approx$"
                cells.append(rf"\textbf{{{text}}}" if cell.bold else text)
            out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    out += [_tex(n).replace("bold =", r"\textbf{bold} =") + r"\\" for n in table.notes]
    out += [r"\end{minipage}", r"\end{table}"]
    return "\n".join(out) + "\n"


def render_html(table: Table) -> str:
    e = html.escape
    ncol = len(table.columns)
    out = [
        f'<table class="tgl-table" id="{e(table.key)}">',
        f"<caption>{e(table.title)}</caption>",
        "<thead><tr>" + "".join(f'<th class="{c.kind}">{e(c.label)}</th>' for c in table.columns) + "</tr></thead>",
    ]
    for s in table.sections:
        cls = "ranked" if s.ranked else "reference"
        out.append(f'<tbody class="{cls}"><tr class="section"><th colspan="{ncol}">{e(s.label)}</th></tr>')
        for r in s.rows:
            tds = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                main, std, suffix = _cell_parts(cell, c)
                text = e(main) + (" ± " + e(std) if std else "") + e(suffix)
                if cell.unverified:
                    text += '<sup class="unverified" title="unverified">†</sup>'
                if cell.bold:
                    text = f"<strong>{text}</strong>"
                tds.append(f'<td class="{c.kind}">{text}</td>')
            out.append('<tr class="row">' + "".join(tds) + "</tr>")
        out.append("</tbody>")
    out.append("<tfoot>" + "".join(f'<tr><td colspan="{ncol}">{e(n)}</td></tr>' for n in table.notes) + "</tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def _raw(v: float | None) -> str:
    return "" if v is None else format(v, ".10g")


def csv_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["table", "section"]
    for c in table.columns:
        if c.kind == "metric":
            header += [
                f"{c.key}_mean",
                f"{c.key}_std",
                f"{c.key}_n",
                f"{c.key}_best",
                f"{c.key}_verified",
                f"{c.key}_protocol",
            ]
        else:
            header.append(c.key)
    rows = []
    for s in table.sections:
        for r in s.rows:
            line = [table.key, s.label]
            for c in table.columns:
                cell = r.get(c.key, Cell())
                if c.kind == "metric":
                    verified = "" if s.ranked or cell.value is None else ("no" if cell.unverified else "yes")
                    line += [
                        _raw(cell.value),
                        _raw(cell.std),
                        "" if cell.n is None else str(cell.n),
                        "1" if cell.bold else "0",
                        verified,
                        cell.protocol or "",
                    ]
                elif c.kind == "number":
                    line.append(_raw(cell.value))
                else:
                    line.append(cell.text or "")
            rows.append(line)
    return header, rows


def render_csv(tables: Sequence[Table]) -> str:
    """All tables in one CSV; tables with other columns follow after a blank line with their own header."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, t in enumerate(tables):
        header, rows = csv_rows(t)
        if i:
            buf.write("\n")
        w.writerow(header)
        w.writerows(rows)
    return buf.getvalue()


def render(tables: Table | Sequence[Table], fmt: str) -> str:
    """Render one or more tables in `fmt` (terminal | markdown | latex | html | csv)."""
    tables = [tables] if isinstance(tables, Table) else list(tables)
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return render_csv(tables)
    fn = {"terminal": render_terminal, "markdown": render_markdown, "latex": render_latex, "html": render_html}[fmt]
    return "\n".join(fn(t) for t in tables)
