"""Majority vote against verifier-weighted best-of-N against best-of-N by
score, on real candidates scored by a real reward model.

The data (bench/data/qwen25math_rm_maj_math_cot_100.jsonl, from the
Qwen2.5-Math evaluation, licence beside it): 100 MATH problems x 8 sampled solutions of a
Qwen2.5-Math model, each with a reward model's score (`pred_score`).

Answers are re-extracted from the solutions' text (last \\boxed{}) and graded
with math-verify (collm.answers "math" task); answers that math-verify finds
equal are one answer when voting. The reward is a real-valued logit (about -4
to 6 here): weighted voting sums sigmoid(reward) per answer, so every vote
counts positively; best-of-N by score takes the top raw reward (the sigmoid
does not change the order). For N < 8 every subset of N of the 8 samples is
evaluated (C(8, N) of them, samples kept in their order for tie-breaks) and
averaged, so the figures carry no sampling noise of their own.

    rows = load_rm_rows(); table = rm_table(rows); print(to_markdown(table))
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collm.answers import get_task  # noqa: E402
from collm.vote import best_score, majority, weighted  # noqa: E402

RM_FILE = Path(__file__).resolve().parent / "data" / "qwen25math_rm_maj_math_cot_100.jsonl"
METHODS = ("majority", "weighted", "best")


def load_rm_rows(path=RM_FILE) -> list[dict]:
    """Per problem: gold, canonical answers (equal answers share one string),
    correctness of each, raw rewards, and the data's own correctness flags."""
    task = get_task("math")
    out = []
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        gold = str(r["answer"])
        reps: list[str] = []
        answers = []
        for text in r["code"]:
            a = task.extract(text)
            if a is not None:
                same = next((x for x in reps if x == a or task.grade(a, x)), None)
                if same is None:
                    reps.append(a)
                    same = a
                a = same
            answers.append(a)
        ok = {a: task.grade(a, gold) for a in reps}
        out.append({"idx": r["idx"], "level": r.get("level"), "gold": gold, "answers": answers,
                    "correct": [a is not None and ok[a] for a in answers],
                    "reward": [float(s[0]) for s in r["pred_score"]], "data_score": [bool(x) for x in r["score"]]})
    return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def pick(method: str, answers, rewards):
    if method == "majority":
        return majority(answers)[0]
    if method == "weighted":
        return weighted(answers, [_sigmoid(x) for x in rewards])[0]
    return best_score(answers, rewards)


def problem_accuracy(row: dict, method: str, n: int) -> float:
    """Mean correctness over all n-subsets of the row's samples."""
    ok = {a: c for a, c in zip(row["answers"], row["correct"]) if a is not None}
    k = len(row["answers"])
    hits, total = 0, 0
    for sub in itertools.combinations(range(k), n):
        a = pick(method, [row["answers"][i] for i in sub], [row["reward"][i] for i in sub])
        hits += bool(a is not None and ok[a])
        total += 1
    return hits / total


def rm_table(rows: list[dict], ns=(1, 2, 4, 8)) -> dict:
    """{method: {n: accuracy}} plus pass@n (any sample correct, same subsets)."""
    out = {m: {n: sum(problem_accuracy(r, m, n) for r in rows) / len(rows) for n in ns} for m in METHODS}
    out["pass"] = {}
    for n in ns:
        acc = 0.0
        for r in rows:
            subs = list(itertools.combinations(range(len(r["answers"])), n))
            acc += sum(any(r["correct"][i] for i in s) for s in subs) / len(subs)
        out["pass"][n] = acc / len(rows)
    return out


def grading_agreement(rows) -> float:
    """Share of samples where math-verify agrees with the data's own grade."""
    pairs = [(a, b) for r in rows for a, b in zip(r["correct"], r["data_score"])]
    return sum(a == b for a, b in pairs) / len(pairs)


def to_markdown(table: dict, ns=(1, 2, 4, 8)) -> str:
    names = {"majority": "majority vote", "weighted": "weighted best-of-N (sum of sigmoid(reward))",
             "best": "best-of-N by top reward", "pass": "pass@N (oracle: any sample correct)"}
    lines = ["| method | " + " | ".join(f"N = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for m in METHODS + ("pass",):
        lines.append(f"| {names[m]} | " + " | ".join(f"{100 * table[m][n]:.1f}%" for n in ns) + " |")
    return "\n".join(lines)
