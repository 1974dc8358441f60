"""The report as one self-contained HTML page: inline CSS, figures inlined
as base64 PNG data URIs, no script and no external resource, so the file
can be mailed or archived alone."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from collm.report import tables
from collm.report.markdown import ABOUT, FAIRNESS, headlines, method_names

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}
h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #e5e5e5;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 6px}p,li{font-size:14px;line-height:1.45}.muted{color:#666}
table{border-collapse:collapse;font-size:13px;margin:8px 0 12px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f2f4f7;text-align:center;white-space:normal;max-width:150px}
td:first-child,th:first-child{text-align:left}
tr.policy td{background:#fff6f4}td.flag{background:#ffe0dc;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs img{max-width:560px}
.flags li{color:#b3261e}code{background:#f2f4f7;padding:1px 4px;border-radius:3px}
"""


def _table(head, body, row_classes=None, cell_class=None) -> str:
    h = "".join(f"<th>{escape(x)}</th>" for x in head)
    rows = []
    for j, row in enumerate(body):
        cls = f' class="{row_classes[j]}"' if row_classes and row_classes[j] else ""
        cells = []
        for c in row:
            text = str(c)
            flag = cell_class and "**FLAG**" in text
            text = text.replace(" **FLAG**", " (flag)")
            cells.append(f'<td class="flag">{escape(text)}</td>' if flag else f"<td>{escape(text)}</td>")
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _img(folder: Path, name: str, alt: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def section_html(s: dict, folder: Path) -> str:
    model = s["model"].get("name", "unknown model")
    out = [f"<h2>{escape(str(s['dataset'] or Path(s['bank']).name))}: {escape(model)}</h2>",
           f'<p class="muted">Bank <code>{escape(Path(s["bank"]).name)}</code>: {s["problems"]} problems x '
           f'{s["k"]} samples; {s["params"]:,} parameters; {s["seeds"]} seeds.</p>']
    head, body = tables.comparison_cells(s["comparison"])
    out.append(_table(head, body, ["policy" if r["kind"] == "policy" else "" for r in s["comparison"]]))
    if headlines(s):
        out.append("<ul>" + "".join(f"<li>{escape(h)}</li>" for h in headlines(s)) + "</ul>")
    if not s["live_timings"]:
        out.append('<p class="muted">Latency and throughput: n/a, the bank is replayed '
                   "(no wall-clock time of its own).</p>")
    out += [f"<p><b>Note:</b> {escape(n)}</p>" for n in s["notes"]]
    f = s["figures"]
    out += ["<h3>Accuracy against compute</h3>",
            '<div class="figs">' + _img(folder, f["accuracy_vs_compute"], "accuracy against compute")
            + _img(folder, f["samples_histogram"], "histogram of allocated samples") + "</div>",
            '<p class="muted">Dashed: the oracle per-problem allocation, the best any fixed per-question budget '
            "could do knowing each question's own curve (an upper bound, not a method).</p>"]
    names = [n for n in method_names(s) if any(n in r["methods"] for r in s["difficulty"])]
    out += ["<h3>Accuracy per difficulty bin</h3>",
            "<p>Problems sorted by pass@1 over the bank's samples and cut into five equal bins "
            "(Snell et al. 2024; an oracle notion of difficulty). Cells: accuracy, and for adaptive rows "
            "the mean samples per question in brackets.</p>",
            '<div class="figs">' + _table(*tables.difficulty_cells(s["difficulty"], names))
            + _img(folder, f["difficulty"], "accuracy per difficulty bin") + "</div>"]
    fa = s["fairness"]
    out += ["<h3>Fairness</h3>", f"<p>{escape(FAIRNESS)} A group is {escape(fa['rule'])}.</p>"]
    for gname, rows in fa["groupings"].items():
        out += [f"<p><b>By {escape(gname)}</b></p>", _table(*tables.fairness_cells(rows, names), cell_class=True)]
    if fa["flags"]:
        out.append('<ul class="flags">' + "".join(f"<li>{escape(x)}</li>" for x in fa["flags"]) + "</ul>")
    else:
        out.append("<p>No group is flagged.</p>")
    return "\n".join(out)


def render(report: dict, folder: Path) -> str:
    e = report["energy"]
    body = [f"<h1>collm comparison report</h1><p class=\"muted\">{escape(ABOUT)}</p>"]
    body += [section_html(s, Path(folder)) for s in report["sections"]]
    body.append("<h2>Energy and emissions</h2>"
                f"<p>Energy = FLOPs / {e['flop_per_joule']:.3g} FLOP per joule; CO2e = energy x "
                f"{e['grid_gco2_per_kwh']:g} gCO2e per kWh (<code>--flop-per-joule</code>, "
                "<code>--grid-gco2-per-kwh</code>).</p><ul>"
                f"<li>{escape(e['sources']['flop_per_joule'])}</li><li>{escape(e['sources']['grid_gco2_per_kwh'])}</li>"
                "</ul><p class=\"muted\">Order-of-magnitude estimates, good for comparing rows.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>collm comparison report</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
