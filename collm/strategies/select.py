"""Compute-optimal strategy selection (Snell et al. 2024, sec. 5.3): for each
difficulty bin and each generation budget, the strategy and settings that
did best, chosen by two-fold cross-validation on measured per-problem results.

    records = [{"problem": 17, "bin": 3, "budget": 16, "strategy": "beam",
                "settings": {"beam_width": 4}, "correct": True}, ...]   # correct: 0/1 or a mean over seeds
    policy = fit_strategy_policy(records)        # held-out accuracy in policy.cv
    policy.save("strategy_policy.json")
    name, settings = load_strategy_policy("strategy_policy.json").choose(3, 16)
    get_strategy(name, **settings).run(backend, prompts, n=16, task=task)

Bins are numbered 1 (easiest) to 5 (hardest), as in Snell et al.'s figures.
Cross-validation: the problems of each bin are split in two halves at random
(seeded); each half's choice is made on the other half and scored on its own,
so policy.cv is the accuracy of the selection procedure on problems it did not
see, beside the best-of-N majority baseline on the same problems. The policy
itself is then chosen on all problems. Ties go to the configuration listed
first in the records (list majority first to prefer the simplest).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from collm.errors import CollmError
from collm.files import read_json

KEY = "collm_strategy_policy"


def _config(r) -> tuple[str, str]:
    return r["strategy"], json.dumps(r.get("settings") or {}, sort_keys=True)


class StrategyPolicy:
    def __init__(self, table: dict, cv: dict | None = None, meta: dict | None = None):
        # table[bin][budget] = {"strategy", "settings", "accuracy", "problems"}
        self.table = {int(b): {int(n): v for n, v in row.items()} for b, row in table.items()}
        self.cv, self.meta = cv or {}, meta or {}
        if not self.table:
            raise CollmError("the strategy policy is empty")

    @property
    def bins(self) -> list[int]:
        return sorted(self.table)

    def choose(self, bin_index: int, budget: float) -> tuple[str, dict]:
        """(strategy name, its settings) for a question of this difficulty bin
        and a budget of `budget` generations: the entry of the largest
        measured budget not above it (the smallest if all are above)."""
        e = self.entry(bin_index, budget)
        return e["strategy"], dict(e["settings"])

    def entry(self, bin_index: int, budget: float) -> dict:
        b = int(bin_index)
        if b not in self.table:
            raise CollmError(f"the strategy policy has no difficulty bin {bin_index} (it has {self.bins})")
        budgets = sorted(self.table[b])
        fit = [n for n in budgets if n <= budget]
        return self.table[b][fit[-1] if fit else budgets[0]]

    def to_dict(self) -> dict:
        return {KEY: 1, "table": {str(b): {str(n): v for n, v in row.items()} for b, row in self.table.items()},
                "cv": self.cv, "meta": self.meta}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def load_strategy_policy(path) -> StrategyPolicy:
    path = Path(path)
    d = read_json(path, "strategy policy")
    if not isinstance(d, dict) or KEY not in d or not isinstance(d.get("table"), dict):
        raise CollmError(f"{path}: not a strategy policy (no '{KEY}' key and table)")
    try:
        for row in d["table"].values():
            for v in row.values():
                if not isinstance(v["strategy"], str) or not isinstance(v["settings"], dict):
                    raise TypeError("bad entry")
        return StrategyPolicy(d["table"], d.get("cv"), d.get("meta"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CollmError(f"{path}: malformed strategy policy ({e})") from None


def _best(acc: dict, order: list) -> tuple | None:
    """The configuration of highest accuracy; ties: first in `order`."""
    best, best_a = None, -1.0
    for c in order:
        if c in acc and acc[c] > best_a + 1e-12:
            best, best_a = c, acc[c]
    return best


def fit_strategy_policy(records, folds: int = 2, seed: int = 0, baseline: str = "majority") -> StrategyPolicy:
    """Choose per (bin, budget) by `folds`-fold cross-validation; see module doc."""
    if not records:
        raise CollmError("no measured results to choose strategies from")
    # results[(bin, budget)][config][problem] = correct
    res: dict = defaultdict(lambda: defaultdict(dict))
    order: list = []
    for r in records:
        c = _config(r)
        if c not in order:
            order.append(c)
        res[(int(r["bin"]), int(r["budget"]))][c][r["problem"]] = float(r["correct"])
    rng = np.random.default_rng(seed)
    fold_of: dict = {}
    for b in sorted({k[0] for k in res}):
        probs = sorted({p for (bb, _), cfgs in res.items() if bb == b for v in cfgs.values() for p in v}, key=str)
        perm = rng.permutation(len(probs))
        for rank, i in enumerate(perm):
            fold_of[(b, probs[i])] = rank % folds

    def acc(cfg_res: dict, keep) -> float | None:
        xs = [v for p, v in cfg_res.items() if keep(p)]
        return float(np.mean(xs)) if xs else None

    table: dict = defaultdict(dict)
    cv: dict = {}
    for (b, n), cfgs in sorted(res.items()):
        held, base, total = 0.0, 0.0, 0
        for f in range(folds):
            train = {c: acc(v, lambda p: fold_of[(b, p)] != f) for c, v in cfgs.items()}
            train = {c: a for c, a in train.items() if a is not None}
            pick = _best(train, order)
            test_probs = [p for p in {p for v in cfgs.values() for p in v} if fold_of[(b, p)] == f]
            if pick is None or not test_probs:
                continue
            got = [cfgs[pick][p] for p in test_probs if p in cfgs[pick]]  # 0/1, or a mean over seeds
            held += sum(got)
            total += len(got)
            bl = [c for c in order if c[0] == baseline and c in cfgs]
            if bl:
                base += sum(cfgs[bl[0]].get(p, 0.0) for p in test_probs)
        full = {c: acc(v, lambda p: True) for c, v in cfgs.items()}
        pick = _best(full, order)
        table[b][n] = {"strategy": pick[0], "settings": json.loads(pick[1]), "accuracy": round(full[pick], 4),
                       "problems": len(cfgs[pick])}
        cv[f"{b}/{n}"] = {"held_out_accuracy": round(held / total, 4) if total else None,
                          f"{baseline}_accuracy": round(base / total, 4) if total else None, "problems": total}
    return StrategyPolicy(dict(table), cv, {"folds": folds, "seed": seed, "configs": [list(c) for c in order]})
