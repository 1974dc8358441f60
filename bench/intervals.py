"""Bench-only helpers: two-fold splits of a bank, uniform majority per
problem, and the paired bootstrap interval of a policy curve's compute
ratio at uniform's accuracy (bench/allocation.py, bench/experiments/*)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collm.allocation.evaluate import fold_indices  # noqa: E402
from collm.allocation.replay import BankView  # noqa: E402
from collm.bank import evaluate as bank_eval  # noqa: E402
from collm.flops import inference_flops  # noqa: E402


def two_fold(view: BankView, splits=(0,)):
    """(fit half, test half) for each random split and each of its two folds."""
    for fit, test in fold_indices(len(view), splits):
        yield view.subset(fit), view.subset(test)


def uniform_per_problem(view: BankView, ks, seeds=range(20)) -> tuple[np.ndarray, np.ndarray]:
    """Uniform majority-of-k per problem: (correct [P, len(ks)] averaged over
    draw orders, FLOPs [P, len(ks)] with the prompt counted)."""
    cor, tok = bank_eval.replay(view.bank, ks, list(seeds))
    prompt = view.A["prompt_tokens"][:, None]
    return cor.mean(axis=0), inference_flops(view.params, prompt + tok.mean(axis=0))


def ratio_interval(policy_points: list[dict], uni_correct: np.ndarray, uni_flops: np.ndarray, col: int,
                   n_boot: int = 2000, level: float = 0.9, seed: int = 0, target: float = 4.0,
                   size: int | None = None) -> dict:
    """Paired percentile bootstrap over problems of the compute ratio at
    uniform's accuracy: uniform's FLOPs at column `col` (e.g. maj@32) over the
    policy's FLOPs to reach the same accuracy on the same resampled problems
    (policy curve from cross_validate(per_problem=True) points, linear between
    them). A resample where the policy never reaches uniform counts as ratio 0.

    `size` draws resamples of that many problems instead of as many as there
    are: a projection of how wide the interval would be on a bank that many
    problems long, if its problems were like these.
    Returns {"ratio": point estimate, "lo", "hi", "reached": share of resamples
    where the policy gets there at all, "at_target": share where the ratio is
    at least `target`}."""
    pc = np.array([p["per_problem"]["correct"] for p in policy_points])  # [B, P]
    pf = np.array([p["per_problem"]["flops"] for p in policy_points])
    P = pc.shape[1]

    def one(idx) -> float:
        acc, fl = pc[:, idx].mean(axis=1), pf[:, idx].mean(axis=1)
        pts = sorted(({"accuracy": a, "flops": f} for a, f in zip(acc, fl)), key=lambda p: p["flops"])
        need = bank_eval.cost_to_reach(pts, float(uni_correct[idx, col].mean()), key="flops")
        return 0.0 if need is None else float(uni_flops[idx, col].mean()) / need

    rng = np.random.default_rng(seed)
    boots = np.array([one(rng.integers(0, P, size or P)) for _ in range(n_boot)])
    a = (1 - level) / 2
    return {"ratio": one(np.arange(P)), "lo": float(np.quantile(boots, a)), "hi": float(np.quantile(boots, 1 - a)),
            "reached": float((boots > 0).mean()), "at_target": float((boots >= target - 1e-9).mean()),
            "target": target, "level": level, "n_boot": n_boot, "size": size or P}


