"""Build the comparison report for one or more banks and write it to a folder:
report.md, report.json, report.html (self-contained) and the PNG figures.

    from collm.report import build_report
    report = build_report(["bank.jsonl"], policies=["policy.json"], out="report/")

Per bank (one dataset section each): the comparison table (greedy; one
sample at the bank's temperature; best-of-K majority; each policy), the
accuracy-against-compute plot, accuracy per difficulty bin, the histogram of
allocated samples, and the fairness section.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from collm.bank.format import load_bank
from collm.errors import CollmError
from collm.report import fairness as fair
from collm.report import html, markdown, plots, sources, tables
from collm.report.energy import EnergyModel

DEFAULT_SEEDS = 20
N_BINS = 5


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "bank"


def bank_section(bank, policies=(), seeds=DEFAULT_SEEDS, energy: EnergyModel | None = None,
                 params: int | None = None, dataset: str | None = None, policy_methods=()) -> tuple[dict, list]:
    """The report's data for one bank: (JSON-ready dict, Method rows).
    `policy_methods` are extra rows already computed (e.g. by the caller)."""
    energy = energy or EnergyModel()
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    P = sources.params_for(bank, params)
    ds = sources.dataset_of(bank, dataset)
    K = bank.k
    temp = (bank.header.get("sampling") or {}).get("temperature")
    t = f"Temp {temp:g}" if isinstance(temp, (int, float)) else "Sampled"
    uni = sources.uniform(bank, P, sorted({1, K}), seeds, names={K: f"Best-of-{K} majority", 1: f"{t}, N = 1"})
    methods = [sources.greedy(bank, P), uni[1]] + ([uni[K]] if K > 1 else [])
    notes = []
    for path in policies:
        _log(f"report: replaying policy {path} on {bank.path} ...")
        methods.append(sources.policy(bank, P, path, seeds))
    methods.extend(policy_methods)
    for m in methods:
        if m.kind == "policy" and m.extra.get("in_sample"):
            cv = m.extra.get("cv") or {}
            line = f"{m.name} was calibrated on this very bank: its figures are in-sample (optimistic)."
            if "accuracy" in cv and "samples" in cv:
                line += (f" Cross-validated when it was calibrated ({cv.get('folds', 2)} fits, each on one half "
                         f"of the problems and scored on the other): {100 * cv['accuracy']:.1f}% accuracy at "
                         f"{cv['samples']:.2f} samples per question")
                if cv.get("ratio_to_uniform"):
                    at_least = "at least " if cv.get("ratio_bound") == ">=" else ""
                    line += f", uniform majority voting needing {at_least}{cv['ratio_to_uniform']:.2f}x its FLOPs"
                line += "."
            notes.append(line)
        if m.kind == "policy" and m.problem_samples is None:
            notes.append(f"{m.name}: its evaluation gives no per-problem allocation; it is missing from the "
                         "histogram, the difficulty bins and the fairness section.")
    curve = sources.uniform_curve(bank, P, seeds)
    oracle = sources.oracle_frontier(bank, P, seeds)
    levels = sources.difficulty_levels(bank, min(N_BINS, len(bank)))
    p1 = sources.pass1(bank)
    section = {
        "bank": bank.path, "dataset": ds, "model": bank.model, "params": P, "problems": len(bank), "k": K,
        "seeds": len(seeds),
        "comparison": tables.comparison(methods, energy),
        "uniform_curve": curve,
        "oracle_frontier": oracle,
        "difficulty": tables.difficulty(methods, levels, p1),
        "histogram": tables.histogram(methods, K),
        "fairness": fair.fairness(bank, ds, methods),
        "live_timings": any(m.latency for m in methods),
        "notes": notes,
    }
    return section, methods


def write_figures(section: dict, methods: list, out: Path, slug: str) -> dict:
    title = f"{section['dataset'] or Path(section['bank']).stem}: {section['model'].get('name', 'model')}, " \
            f"{section['problems']} problems, {section['seeds']} seeds"
    figs = {}
    figs["accuracy_vs_compute"] = plots.accuracy_vs_compute(
        out / f"{slug}_accuracy_vs_compute.png", title, section["uniform_curve"], methods,
        section["oracle_frontier"]).name
    hist = section["histogram"]
    adaptive = {k: v for k, v in hist.items() if any(m.name == k and m.kind == "policy" for m in methods)}
    note = None if adaptive else "no per-problem allocation from a policy: uniform rows only"
    figs["samples_histogram"] = plots.samples_histogram(
        out / f"{slug}_samples_histogram.png", f"Allocated generations per question ({title.split(':')[0]})",
        adaptive or hist, note).name
    names = [m.name for m in methods if not np.isnan(m.correct).all()]
    figs["difficulty"] = plots.difficulty_bars(
        out / f"{slug}_difficulty.png", f"Accuracy per difficulty bin ({title.split(':')[0]})",
        section["difficulty"], names).name
    return figs


def build_report(banks, policies=(), out="report", seeds: int = DEFAULT_SEEDS, energy: EnergyModel | None = None,
                 params: int | None = None, dataset: str | None = None, allow_ragged: bool = False) -> dict:
    """Write report.{md,json,html} and the figures to `out`; return the report dict.
    Bank files are read with collm.bank.load_bank (`allow_ragged` passed on)."""
    if not banks:
        raise CollmError("give at least one --bank")
    if seeds < 1:
        raise CollmError("--seeds must be at least 1")
    energy = energy or EnergyModel()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CollmError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    report = {"collm_report": 1, "seeds": seeds, "energy": energy.describe(), "sections": []}
    used = set()
    for b in banks:
        bank = b if hasattr(b, "problems") else load_bank(b, allow_ragged=allow_ragged)
        _log(f"report: {bank.path} ({len(bank)} problems x {bank.k} samples)")
        section, methods = bank_section(bank, policies, seeds, energy, params, dataset)
        slug = _slug(section["dataset"] or Path(bank.path).stem)
        while slug in used:
            slug += "_2"
        used.add(slug)
        section["slug"] = slug
        section["figures"] = write_figures(section, methods, out, slug)
        report["sections"].append(section)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    (out / "report.md").write_text(markdown.render(report))
    (out / "report.html").write_text(html.render(report, out))
    _log(f"report: wrote {out}/report.md, report.json, report.html and "
         f"{sum(len(s['figures']) for s in report['sections'])} figures")
    return report


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
