"""Small HTML helpers for the report: escaping, tables, images, the page's inline style.

Everything that reaches the page goes through :func:`esc` (``html.escape``); images are inline
``data:`` URIs, so the page needs no network and no JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["esc", "fmt", "img_tag", "table", "section", "kv_table", "STYLE", "NA"]

NA = "n/a"


def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: object, digits: int = 3) -> str:
    """Numbers to short text; missing values (None, NaN, NaT) to ``n/a``."""
    if value is None:
        return NA
    try:
        if isinstance(value, float) and math.isnan(value):
            return NA
    except TypeError:
        pass
    if str(value) in ("NaT", "nan", "<NA>", ""):
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def img_tag(png: bytes, alt: str, *, css_class: str = "plot", width: int | None = None) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    w = f' width="{int(width)}"' if width else ""
    return f'<img class="{esc(css_class)}" src="{uri}" alt="{esc(alt)}"{w}>'


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False, css_class: str = "") -> str:
    """A table; cells are escaped unless ``raw`` (then each cell is trusted, pre-built HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = row if raw else [f"<td>{esc(c)}</td>" for c in row]
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(items: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in items.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def section(sid: str, title: str, body: str, *, note: str | None = None) -> str:
    n = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{n}{body}</section>'


STYLE = """
:root { --good:#2e7d32; --medium:#f9a825; --bad:#c62828; --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0; background: #f5f7fa; font-size: 14px; line-height: 1.45; }
header { background: #102a43; color: #fff; padding: 18px 28px 12px; }
header h1 { margin: 0 0 6px; font-size: 22px; }
header .stamp { font-size: 12px; color: #bcccdc; display: flex; flex-wrap: wrap; gap: 4px 18px; }
header .stamp code { color: #fff; }
nav { background: #243b53; padding: 6px 28px; position: sticky; top: 0; z-index: 2; }
nav a { color: #d9e2ec; margin-right: 16px; text-decoration: none; font-size: 13px; }
nav a:hover { color: #fff; text-decoration: underline; }
main { padding: 8px 28px 40px; max-width: 1500px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 16px 0; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f0f4f8; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 210px; color: var(--muted); font-weight: 600; }
.note { color: var(--muted); margin: 0 0 8px; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.pill.good { background: var(--good); } .pill.bad { background: var(--bad); }
.pill.medium { background: var(--medium); color: #222; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 16px; min-width: 120px; }
.card .n { font-size: 26px; font-weight: 700; } .card .l { color: var(--muted); font-size: 12px; }
.card.good { border-top: 4px solid var(--good); } .card.medium { border-top: 4px solid var(--medium); }
.card.bad { border-top: 4px solid var(--bad); } .card.rejected { border-top: 4px solid #616e7c; }
ul.warnings li { margin: 4px 0; } .warn { background: #fff8e1; border-left: 4px solid #f9a825; padding: 6px 10px; }
.ok { background: #e8f5e9; border-left: 4px solid var(--good); padding: 6px 10px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 10px; }
.item { border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fbfcfd; }
.item.disagree { border-color: var(--bad); box-shadow: 0 0 0 1px var(--bad); }
.item .imgs { display: flex; gap: 4px; }
.item .imgs img { width: 160px; height: 160px; object-fit: contain; background: #000; border-radius: 3px; }
.item .name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all;
              margin: 4px 0 2px; }
.item .meta { font-size: 12px; color: var(--muted); }
.probs { display: flex; height: 10px; border-radius: 3px; overflow: hidden; margin: 3px 0; }
.probs span { display: block; height: 100%; }
.probs .good { background: var(--good); } .probs .medium { background: var(--medium); }
.probs .bad { background: var(--bad); }
.missing { width: 160px; height: 160px; display: flex; align-items: center; justify-content: center;
           background: #e4e7eb;
           color: var(--muted); font-size: 12px; border-radius: 3px; }
img.plot { max-width: 100%; height: auto; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
a.review { font-size: 12px; }
"""
