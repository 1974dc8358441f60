"""Compute-optimal strategy selection (Snell et al. 2024, sec. 5.3): for each
difficulty bin and each generation budget, the strategy and settings that
did best, chosen by two-fold cross-validation on measured per-problem results.

    records = [{"problem": 17, "bin": 3, "budget": 16, "strategy": "beam",
                "settings": {"beam_width": 4}, "correct": True}, ...]   # correct: 0/1 or a mean over seeds
    policy = fit_strategy_policy(records)        # held-out accuracy in policy.cv
    policy.save("strategy_policy.json")
    name, settings = load_policy("strategy_policy.json").choose(3, 16)   # collm.policies.load_policy
    get_strategy(name, **settings).run(backend, prompts, n=16, task=task)

Bins are numbered 1 (easiest) to 5 (hardest), as in Snell et al.'s figures.
A policy fitted on oracle bins (pass@1 from many samples) is for analysis; one
that carries its own DifficultyBins (collm.difficulty.bins: bins predicted
from the question before any generation) runs live, and is what
`collm ask --policy` and `collm eval --policy` take:

    policy = load_policy(path, model=backend.identity())   # collm.policies
    plan = policy.plan(backend, prompts, budget=16)   # per prompt: bin, strategy, settings

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
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from collm.allocation.base import ModelIdentity, describe_errors, describe_model, same_model
from collm.difficulty.bins import DifficultyBins, live_values
from collm.errors import CollmError
from collm.files import read_json


def _int_key(k) -> int:
    if isinstance(k, bool) or not str(k).lstrip("-").isdigit():
        raise ValueError(f"{k!r} is not a whole number")
    return int(k)


StrictIntKey = Annotated[int, BeforeValidator(_int_key)]

KEY = "collm_strategy_policy"


class Entry(BaseModel):
    """What a strategy policy chose for one (bin, budget)."""

    model_config = ConfigDict(extra="allow")
    strategy: str
    settings: dict[str, Any]


class StrategyPolicyFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    table: dict[StrictIntKey, dict[StrictIntKey, Entry]] = Field(min_length=1)
    cv: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    bins: dict[str, Any] | None = None
    model: ModelIdentity = ModelIdentity()


def _config(r) -> tuple[str, str]:
    return r["strategy"], json.dumps(r.get("settings") or {}, sort_keys=True)


class StrategyPolicy:
    def __init__(self, table: dict, cv: dict | None = None, meta: dict | None = None, bins=None,
                 model: dict | None = None):
        # table[bin][budget] = {"strategy", "settings", "accuracy", "problems"}
        self.table = {int(b): {int(n): v for n, v in row.items()} for b, row in table.items()}
        self.cv, self.meta = cv or {}, meta or {}
        self.bins_model = bins  # DifficultyBins, or None: the caller knows each question's bin
        self.model = model or {}
        if not self.table:
            raise CollmError("the strategy policy is empty")

    @property
    def bins(self) -> list[int]:
        return sorted(self.table)

    @property
    def budgets(self) -> list[int]:
        return sorted({n for row in self.table.values() for n in row})

    def plan(self, backend, prompts, budget: float, task=None) -> list[dict]:
        """For each prompt: its predicted bin and difficulty, the strategy and
        settings chosen for that bin at this budget, and what predicting the
        bin cost in FLOPs (one forward pass over the question)."""
        if self.bins_model is None:
            raise CollmError("this strategy policy was fitted on oracle difficulty bins (pass@1 from many samples), "
                             "which a new question does not have; fit one with predicted bins to use it live")
        vals, flops = live_values(backend, prompts, self.bins_model.signals, self.bins_model.k, task)
        levels, diff = self.bins_model.predict(vals), self.bins_model.difficulty(vals)
        out = []
        for b, d, f in zip(levels, diff, flops):
            name, settings = self.choose(int(b), budget)
            out.append({"bin": int(b), "difficulty": round(float(d), 4), "strategy": name, "settings": settings,
                        "estimator_flops": float(f)})
        return out

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

    def held_out_accuracy(self, budget: int) -> float | None:
        """The cross-validated accuracy of the per-bin choice at this budget, over all bins' problems."""
        cells = [v for key, v in self.cv.items() if key.endswith(f"/{budget}") and v["held_out_accuracy"] is not None]
        total = sum(c["problems"] for c in cells)
        return sum(c["held_out_accuracy"] * c["problems"] for c in cells) / total if total else None

    def to_dict(self) -> dict:
        d = {KEY: 1, "model": self.model,
             "table": {str(b): {str(n): v for n, v in row.items()} for b, row in self.table.items()},
             "cv": self.cv, "meta": self.meta}
        if self.bins_model is not None:
            d["bins"] = self.bins_model.to_dict()
        return d

    def save(self, path) -> None:
        try:
            Path(path).write_text(json.dumps(self.to_dict(), indent=1))
        except OSError as e:
            raise CollmError(f"cannot write the strategy policy {path}: {e.strerror or e}") from None

    @classmethod
    def from_file(cls, path, model: dict | None = None) -> "StrategyPolicy":
        """Read a strategy policy, every field checked; with `model` ({name,
        sha256}), refuse one made for another model."""
        path = Path(path)
        d = read_json(path, "strategy policy")
        if not isinstance(d, dict) or KEY not in d:
            raise CollmError(f"{path}: not a strategy policy (no '{KEY}' key)")
        try:
            f = StrategyPolicyFile.model_validate(d)
            bins = DifficultyBins.from_dict(f.bins) if f.bins is not None else None
            pol = cls({b: {n: e.model_dump() for n, e in row.items()} for b, row in f.table.items()},
                      f.cv, f.meta, bins, f.model.model_dump())
        except ValidationError as e:
            raise CollmError(f"{path}: malformed strategy policy ({describe_errors(e)})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CollmError(f"{path}: malformed strategy policy ({e})") from None
        if model is not None and pol.model and (pol.model.get("name") or pol.model.get("sha256")) \
                and not same_model(pol.model, model):
            raise CollmError(f"{path}: this strategy policy was fitted for {describe_model(pol.model)}, "
                             f"not for {describe_model(model)}")
        return pol


def _best(acc: dict, order: list) -> tuple | None:
    """The configuration of highest accuracy; ties: first in `order`."""
    best, best_a = None, -1.0
    for c in order:
        if c in acc and acc[c] > best_a + 1e-12:
            best, best_a = c, acc[c]
    return best


def fit_strategy_policy(records, folds: int = 2, seed: int = 0, baseline: str = "majority",
                        fold_of_problem: dict | None = None) -> StrategyPolicy:
    """Choose per (bin, budget) by `folds`-fold cross-validation; see module doc.
    fold_of_problem (problem -> fold) fixes the split, e.g. the one the
    records' predicted bins were cross-fitted on, so no fold sees its own labels."""
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
            fold_of[(b, probs[i])] = rank % folds if fold_of_problem is None else int(fold_of_problem[probs[i]])

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
