"""The report as Markdown (report.md), figures linked beside it."""

from __future__ import annotations

from pathlib import Path

from collm.report import tables

ABOUT = (
    "Every number is replayed from a sample bank: the same graded samples, drawn in the same seeded "
    "order for every method, so methods differ only in how many samples they take and how they vote. "
    "Accuracy is the mean over seeds (95% bootstrap interval over problems). FLOPs per question: "
    "2 x parameters x processed tokens, each prompt prefilled once for all of its samples. "
    "Latency and throughput exist only for runs timed live; a replay has none."
)

FAIRNESS = (
    "Cells: accuracy / compute, per group of questions and method. Compute is the group's FLOPs per "
    "question as a multiple of the method's mean (1.00x = an even share)."
)


def headlines(section: dict) -> list[str]:
    """One sentence per policy: its accuracy and cost, and what uniform
    majority voting pays for the same accuracy."""
    out = []
    for r in section["comparison"]:
        if r["kind"] != "policy":
            continue
        line = f"{r['method']}: {100 * r['accuracy']:.1f}% accuracy at {r['samples']:.2f} samples"
        if r["x_greedy"] is not None:
            line += f" and {r['x_greedy']:.2f}x greedy's FLOPs per question"
        if r.get("ratio_to_uniform") is not None:
            at_least = "at least " if r.get("ratio_bound") == ">=" else ""
            line += (f"; uniform majority voting needs {at_least}{r['ratio_to_uniform']:.2f}x its FLOPs "
                     "for that accuracy")
        out.append(line + ".")
    return out


def method_names(section: dict) -> list[str]:
    return [r["method"] for r in section["comparison"]]


def section_md(s: dict) -> str:
    model = s["model"].get("name", "unknown model")
    lines = [f"## {s['dataset'] or Path(s['bank']).name}: {model}", "",
             f"Bank `{Path(s['bank']).name}`: {s['problems']} problems x {s['k']} samples; "
             f"{s['params']:,} parameters; {s['seeds']} seeds.", ""]
    lines += [tables.markdown_table(*tables.comparison_cells(s["comparison"])), ""]
    lines += [f"- {h}" for h in headlines(s)] + ([""] if headlines(s) else [])
    if not s["live_timings"]:
        lines += ["Latency and throughput: n/a, the bank is replayed (no wall-clock time of its own).", ""]
    for n in s["notes"]:
        lines += [f"Note: {n}", ""]
    f = s["figures"]
    lines += ["### Accuracy against compute", "", f"![accuracy against compute]({f['accuracy_vs_compute']})", "",
              "The dashed line is the oracle per-problem allocation: the best any fixed per-question budget "
              "could do knowing each question's own curve (an upper bound, not a method).", ""]
    names = [n for n in method_names(s) if any(n in r["methods"] for r in s["difficulty"])]
    lines += ["### Accuracy per difficulty bin", "",
              "Bins: problems sorted by pass@1 over the bank's samples, cut into five equal groups "
              "(Snell et al. 2024; an oracle notion of difficulty). Cells: accuracy, and for adaptive rows "
              "the mean samples per question in brackets.", "",
              tables.markdown_table(*tables.difficulty_cells(s["difficulty"], names)), "",
              f"![accuracy per difficulty bin]({f['difficulty']})", ""]
    lines += ["### Allocated samples", "", f"![histogram of allocated samples]({f['samples_histogram']})", ""]
    fa = s["fairness"]
    lines += ["### Fairness", "", FAIRNESS + " A group is " + fa["rule"] + ".", ""]
    for gname, rows in fa["groupings"].items():
        lines += [f"By {gname}:", "", tables.markdown_table(*tables.fairness_cells(rows, names)), ""]
    lines += (["Flagged:", ""] + [f"- {x}" for x in fa["flags"]] if fa["flags"] else ["No group is flagged."]) + [""]
    return "\n".join(lines)


def energy_md(e: dict) -> str:
    return ("## Energy and emissions\n\n"
            f"Energy = FLOPs / {e['flop_per_joule']:.3g} FLOP per joule; CO2e = energy x "
            f"{e['grid_gco2_per_kwh']:g} gCO2e per kWh (--flop-per-joule, --grid-gco2-per-kwh). Defaults: "
            f"{e['sources']['flop_per_joule']}; {e['sources']['grid_gco2_per_kwh']}. "
            "Order-of-magnitude estimates, good for comparing rows.\n")


def render(report: dict) -> str:
    parts = ["# collm comparison report", "", ABOUT, ""]
    parts += [section_md(s) for s in report["sections"]]
    parts += [energy_md(report["energy"])]
    return "\n".join(parts)
