"""How good a policy is on a bank: accuracy, average generations and FLOPs
(the estimators' share apart), and the compute uniform best-of-N needs for
the same accuracy.

Calibration never reports in-sample figures: cross_validate() splits the
bank's problems in two at random, fits on one half, replays on the other,
swaps, and averages over draw seeds (and over repeated splits).
"""

from __future__ import annotations

import numpy as np

from collm.allocation.base import Policy, get_policy
from collm.allocation.replay import BankView, replay, summary
from collm.bank import evaluate as bank_eval
from collm.bank.format import file_sha256
from collm.errors import CollmError

EVAL_SEEDS = (0, 1, 2, 3)


def uniform_points(view: BankView, seeds=EVAL_SEEDS) -> list[dict]:
    """Uniform majority-of-n for n = 1..K, sorted by cost (FLOPs per problem)."""
    curve = bank_eval.uniform_curve(view.bank, range(1, view.K + 1), list(seeds), view.params)
    return [curve[k] for k in sorted(curve)]


def compute_ratio(points: list[dict], accuracy: float, flops: float) -> dict:
    """Uniform FLOPs to reach `accuracy` divided by the policy's FLOPs.
    When the policy beats uniform maj@K, the ratio is a lower bound (">=")."""
    need = bank_eval.cost_to_reach(points, accuracy, key="flops")
    if need is None:
        return {"ratio": points[-1]["flops"] / flops, "bound": ">=", "uniform_flops": points[-1]["flops"]}
    return {"ratio": need / flops, "bound": "=", "uniform_flops": need}


def fold_indices(P: int, splits=(0,)):
    """(fit indices, test indices) for each random split of P problems and each of its two folds."""
    for sp in splits:
        perm = np.random.default_rng(sp).permutation(P)
        halves = [np.sort(perm[: P // 2]), np.sort(perm[P // 2:])]
        for f in range(2):
            yield halves[f], halves[1 - f]


def cross_validate(view: BankView, kind: str, samples: float | None = None, flops: float | None = None,
                   seeds=EVAL_SEEDS, splits=(0,), params: dict | None = None, progress=None,
                   per_problem: bool = False) -> dict:
    """Two-fold cross-validated figures of policy `kind` calibrated to the budget.
    per_problem=True adds each problem's mean correctness and FLOPs over the
    replays where it was held out (for bootstrap intervals over problems)."""
    runs = []
    P = len(view)
    cor, fl, cnt = np.zeros(P), np.zeros(P), np.zeros(P)
    for fit, test in fold_indices(P, splits):
        fit_v, test_v = view.subset(fit), view.subset(test)
        pol = get_policy(kind, **(params or {})).fit(fit_v, samples=samples, flops=flops)
        cap = test_v.budget(samples=samples, flops=flops)  # the budget is a hard cap on the held-out half
        new = [replay(pol, test_v, s, cap) for s in seeds]
        for r in new:
            cor[test] += r["correct"]
            fl[test] += r["flops"]
            cnt[test] += 1
        runs += new
        if progress:
            progress()
    out = summary(runs)
    out["folds"] = 2 * len(splits)
    out["seeds"] = len(seeds)
    if per_problem:
        out["per_problem"] = {"correct": (cor / cnt).tolist(), "flops": (fl / cnt).tolist()}
    return out


def policy_report(bank, policy_path, seeds=EVAL_SEEDS, params: int | None = None) -> dict:
    """What `collm eval --policy` prints: the policy replayed on the bank (its
    own calibrated spend), against the bank's uniform curve."""
    if isinstance(seeds, int):
        seeds = range(seeds)
    seeds = list(seeds) or list(EVAL_SEEDS)
    view = BankView(bank, params)
    pol = Policy.from_file(policy_path, model=view.model if (view.model.get("sha256") or view.model.get("name")) else None)
    if pol.target.get("max_tokens") and int(pol.target["max_tokens"]) != view.max_tokens:
        raise CollmError(f"{policy_path}: calibrated for max_tokens {pol.target['max_tokens']}, "
                         f"but the bank was sampled with {view.max_tokens}")
    res = summary([replay(pol, view, s) for s in seeds])
    pts = uniform_points(view, range(max(20, len(seeds))))  # the reference: cheap, so many draw orders
    r = compute_ratio(pts, res["accuracy"], res["flops"])
    same = [p for p in pts if p["samples"] in (16, 32)]
    return {"policy": {**res, "kind": pol.kind, "params": pol.params}, "accuracy": res["accuracy"],
            "samples": res["samples"], "flops": res["flops"], "estimator_flops": res["estimator_flops"],
            "estimator_share": res["estimator_flops"] / res["flops"] if res["flops"] else 0.0,
            "ratio_to_uniform": r["ratio"], "ratio_bound": r["bound"], "uniform_flops_same_accuracy": r["uniform_flops"],
            "uniform": {str(p["samples"]): {"accuracy": p["accuracy"], "flops": p["flops"]} for p in same},
            "cv": pol.cv, "seeds": len(seeds), "problems": len(view),
            "in_sample": bool(pol.cv.get("bank_sha256")) and pol.cv.get("bank_sha256") == file_sha256(bank.path)}
