"""The report's tables as plain data (lists of dicts), and their Markdown.

comparison    one row per method: accuracy, FLOPs per question (and as a
              multiple of greedy), samples, energy, latency when timed live
difficulty    accuracy (and samples) per difficulty bin, per method
"""

from __future__ import annotations

import numpy as np

from collm.report.energy import EnergyModel
from collm.report.sources import Method

REPLAYED = "n/a (replayed)"
POLICY_EXTRAS = ("estimator_flops", "ratio_to_uniform", "ratio_bound", "in_sample", "cv")


def comparison(methods: list[Method], energy: EnergyModel) -> list[dict]:
    greedy = next((m for m in methods if m.kind == "greedy"), None)
    base = greedy.flops if greedy else None
    rows = []
    for m in methods:
        lat = m.latency or {}
        rows.append({
            "method": m.name, "kind": m.kind,
            "accuracy": m.accuracy, "ci95": [m.lo, m.hi] if m.lo is not None else None,
            "flops": m.flops, "x_greedy": m.flops / base if base else None,
            "samples": m.samples,
            "joules": energy.joules(m.flops), "mg_co2e": 1000 * energy.gco2e(m.flops),
            "p50_s": lat.get("p50_s"), "p95_s": lat.get("p95_s"), "questions_per_s": lat.get("questions_per_s"),
            **{k: v for k, v in m.extra.items() if k in POLICY_EXTRAS},
        })
    return rows


def difficulty(methods: list[Method], levels: np.ndarray, pass1: np.ndarray) -> list[dict]:
    rows = []
    for b in sorted(set(levels.tolist())):
        m = levels == b
        row = {"bin": int(b), "n": int(m.sum()), "pass1_min": float(pass1[m].min()),
               "pass1_max": float(pass1[m].max()), "methods": {}}
        for meth in methods:
            if np.isnan(meth.correct).all():
                continue
            row["methods"][meth.name] = {
                "accuracy": float(np.nanmean(meth.correct[m])),
                "samples": None if meth.problem_samples is None else float(meth.problem_samples[m].mean()),
                "flops": float(meth.problem_flops[m].mean()),
            }
        rows.append(row)
    return rows


def histogram(methods: list[Method], K: int) -> dict:
    """{method: counts of questions given 0, 1, 2, ... samples} for methods that
    report them (at least 0..K)."""
    out = {}
    for m in methods:
        if m.allocations is None:
            continue
        a = np.clip(np.rint(m.allocations).astype(int), 0, None)
        out[m.name] = np.bincount(a, minlength=max(K, int(a.max(initial=0))) + 1).tolist()
    return out


# ---- formatting -------------------------------------------------------------

def fmt_flops(x: float | None) -> str:
    if x is None:
        return "n/a"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def fmt_ci(ci) -> str:
    return "" if not ci or ci[0] is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def fmt_s(x: float | None) -> str:
    return REPLAYED if x is None else f"{x:.2f} s"


def comparison_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["Method", "Accuracy [95% CI]", "FLOPs / question", "x greedy", "Samples / question",
            "Energy / question", "CO2e / question", "p50 latency", "p95 latency", "Throughput"]
    body = []
    for r in rows:
        body.append([
            r["method"], fmt_pct(r["accuracy"]) + fmt_ci(r["ci95"]), fmt_flops(r["flops"]),
            "n/a" if r["x_greedy"] is None else f"{r['x_greedy']:.2f}x", f"{r['samples']:.2f}",
            f"{r['joules']:.3g} J", f"{r['mg_co2e']:.3g} mg", fmt_s(r["p50_s"]), fmt_s(r["p95_s"]),
            REPLAYED if r["questions_per_s"] is None else f"{r['questions_per_s']:.2f} q/s",
        ])
    return head, body


def difficulty_cells(rows: list[dict], names: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["Bin (1 = easiest)", "Problems", "pass@1 range"] + [f"{n}" for n in names]
    body = []
    for r in rows:
        cells = [str(r["bin"]), str(r["n"]), f"{r['pass1_min']:.2f}-{r['pass1_max']:.2f}"]
        for n in names:
            v = r["methods"].get(n)
            if v is None:
                cells.append("n/a")
            elif v["samples"] is not None and not float(v["samples"]).is_integer():
                cells.append(f"{fmt_pct(v['accuracy'])} ({v['samples']:.1f})")
            else:
                cells.append(fmt_pct(v["accuracy"]))
        body.append(cells)
    return head, body


def fairness_cells(rows: list[dict], names: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["Group", "Problems"] + list(names)
    body = []
    for r in rows:
        cells = [r["group"], str(r["n"])]
        for n in names:
            v = r["methods"].get(n)
            if v is None:
                cells.append("n/a")
                continue
            mark = " **FLAG**" if v["flagged"] else ""
            cells.append(f"{fmt_pct(v['accuracy'])} / {v['compute_ratio']:.2f}x{mark}")
        body.append(cells)
    return head, body


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    def esc(c):
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)
