"""Who gets the compute: accuracy and FLOPs per group of questions.

An adaptive policy moves samples between questions. That is the point, but
it can starve a kind of question: this section shows, per group, each
method's accuracy and compute, and flags a group that gets systematically
less compute at lower accuracy:

    flagged  when  group FLOPs per question <= (1 - tol) x the method's mean
             and   group accuracy < the method's accuracy - 2 standard errors
                   (binomial, sqrt(a (1 - a) / n) with n the group's size)

Groups: MATH (math500) by subject and by level, from the dataset's own
labels; GSM8K and every other dataset by question-length quartile, the
length being the question's tokens in the bank (q_tokens: what the model
read, template excluded).
"""

from __future__ import annotations

import math

import numpy as np

from collm.datasets import load_dataset
from collm.report.sources import Method

TOL = 0.10


def groupings(bank, dataset: str | None) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{grouping name: [(group label, bool mask [P]), ...]}."""
    out = {}
    if dataset == "math500":
        meta = {p.id: p.meta for p in load_dataset("math500", "test")}
        rows = [p.i for p in bank.problems]
        for key in ("subject", "level"):
            vals = [str(meta.get(i, {}).get(key, "?")) for i in rows]
            out[key] = [(v, np.array([x == v for x in vals])) for v in sorted(set(vals), key=_natural)]
    out["question length"] = length_quartiles(np.array([p.q_tokens for p in bank.problems]))
    return out


def _natural(v: str):
    return (0, int(v)) if v.isdigit() else (1, v)


def length_quartiles(q_tokens: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Four groups of (about) equal size by question length in tokens; a
    length never straddles two groups."""
    order = np.argsort(q_tokens, kind="stable")
    groups = []
    taken = np.zeros(len(q_tokens), bool)
    for j, chunk in enumerate(np.array_split(order, 4)):
        if not len(chunk):
            continue
        hi = q_tokens[chunk].max()
        m = (q_tokens <= hi) & ~taken
        if not m.any():
            continue
        taken |= m
        lo = q_tokens[m].min()
        groups.append((f"Q{len(groups) + 1}: {lo}-{hi} tokens", m))
    return groups


def group_rows(methods: list[Method], groups: list[tuple[str, np.ndarray]], tol: float = TOL) -> list[dict]:
    """One row per (group): n, then per method accuracy, FLOPs per question,
    compute ratio to the method's mean, mean samples and the flag."""
    rows = []
    for label, m in groups:
        n = int(m.sum())
        row = {"group": label, "n": n, "methods": {}}
        for meth in methods:
            if np.isnan(meth.correct).all():
                continue  # aggregate-only policy: nothing per group
            acc = float(np.nanmean(meth.correct[m]))
            fl = float(meth.problem_flops[m].mean())
            ratio = fl / meth.flops if meth.flops else float("nan")
            se = math.sqrt(max(meth.accuracy * (1 - meth.accuracy), 1e-12) / max(n, 1))
            flag = bool(ratio <= 1 - tol and acc < meth.accuracy - 2 * se)
            samples = None if meth.problem_samples is None else float(meth.problem_samples[m].mean())
            row["methods"][meth.name] = {"accuracy": acc, "flops": fl, "compute_ratio": ratio,
                                         "samples": samples, "flagged": flag}
        rows.append(row)
    return rows


def fairness(bank, dataset: str | None, methods: list[Method], tol: float = TOL) -> dict:
    """{grouping: rows}, plus the list of flags as readable lines."""
    out = {"rule": (f"flagged when its FLOPs per question are at most {1 - tol:.0%} of the method's mean "
                    "and its accuracy is more than 2 standard errors below the method's accuracy"),
           "groupings": {}, "flags": []}
    for name, groups in groupings(bank, dataset).items():
        rows = group_rows(methods, groups, tol)
        out["groupings"][name] = rows
        for r in rows:
            for meth, v in r["methods"].items():
                if v["flagged"]:
                    out["flags"].append(f"{meth}: {name} {r['group']} gets {v['compute_ratio']:.2f}x the mean compute "
                                        f"at {v['accuracy']:.1%} accuracy")
    return out
