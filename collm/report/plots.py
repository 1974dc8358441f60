"""The report's figures (matplotlib, Agg backend: no display needed).

accuracy_vs_compute   accuracy against FLOPs per question: the uniform
                      majority-vote curve, greedy, each policy, the oracle
                      per-problem frontier
samples_histogram     how many samples each question was given
difficulty_bars       accuracy per difficulty bin, per method
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "collm", "figure.dpi": 100})
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None}, pil_kwargs={"optimize": True})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


POLICY_COLOURS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def accuracy_vs_compute(path: Path, title: str, curve: list[dict], methods: list, oracle: list[dict] | None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    x = [p["flops"] for p in curve]
    y = [100 * p["accuracy"] for p in curve]
    ax.plot(x, y, "o-", color="#1f77b4", label="Majority of k (uniform)", zorder=3)
    for p in curve:
        ax.annotate(f"k={p['k']}", (p["flops"], 100 * p["accuracy"]), textcoords="offset points",
                    xytext=(4, -11), fontsize=8, color="#1f77b4")
    if oracle:
        ax.plot([p["flops"] for p in oracle], [100 * p["accuracy"] for p in oracle], "--", color="#7f7f7f",
                label="Oracle per-problem allocation", zorder=2)
    j = 0
    for m in methods:
        if m.kind == "greedy":
            ax.plot([m.flops], [100 * m.accuracy], "s", color="#2ca02c", ms=8, label="Greedy", zorder=4)
        elif m.kind == "policy":
            ax.plot([m.flops], [100 * m.accuracy], "*", color=POLICY_COLOURS[j % len(POLICY_COLOURS)], ms=14,
                    label=m.name, zorder=5)
            j += 1
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per question (log scale)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _save(fig, path)


def samples_histogram(path: Path, title: str, hist: dict[str, list[int]], note: str | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    names = list(hist)
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        counts = np.asarray(hist[name], float)
        share = 100 * counts / max(counts.sum(), 1)
        xs = np.arange(len(counts)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, share, width=width, label=name)
    ax.set_xlabel("Generations allocated to a question (a greedy pass counts as one)")
    ax.set_ylabel("Share of questions (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    if note:
        ax.text(0.99, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#555")
    return _save(fig, path)


def difficulty_bars(path: Path, title: str, rows: list[dict], names: list[str]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    bins = [r["bin"] for r in rows]
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        ys = [100 * (r["methods"].get(name) or {}).get("accuracy", np.nan) for r in rows]
        ax.bar(np.arange(len(bins)) + (j - (len(names) - 1) / 2) * width, ys, width=width, label=name)
    ax.set_xticks(np.arange(len(bins)), [f"{b}\n(n={r['n']})" for b, r in zip(bins, rows)])
    ax.set_xlabel("Difficulty bin (1 = easiest, by pass@1 over the bank's samples)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)
