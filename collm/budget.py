"""A batch budget: FLOPs and/or generations, never exceeded.

A policy never learns a generation's length before it is made, so every
request is charged its worst case up front (max_tokens per generation, plus
the prompt's prefill the first time the prompt is touched) and the difference
is refunded once the real length is known. A request whose worst case does not
fit what is left is refused. Spent FLOPs can therefore never pass the budget,
whatever the policy asks for; what is left at the end is less than one
worst-case generation.

The minimum a batch can run on is one greedy pass per prompt at its worst
case: sum over prompts of 2 x params x (prompt_tokens + max_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collm.errors import CollmError
from collm.flops import inference_flops


@dataclass
class Budget:
    """flops: total FLOPs for the batch (None: no FLOP cap); samples: total
    generations for the batch, the greedy pass included (None: no cap)."""

    flops: float | None = None
    samples: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.flops is None and self.samples is None

    def describe(self) -> str:
        parts = []
        if self.flops is not None:
            parts.append(f"{self.flops:.4g} FLOPs")
        if self.samples is not None:
            parts.append(f"{self.samples:g} generations")
        return " and ".join(parts) or "no budget"


def minimum_flops(prompt_tokens, params: int, max_tokens: int) -> float:
    """One worst-case greedy pass per prompt (and any estimator costs on top)."""
    return float(sum(inference_flops(params, int(t) + int(max_tokens)) for t in prompt_tokens))


def make_budget(n_prompts: int, prompt_tokens, params: int, max_tokens: int, *, samples: float | None = None,
                flops: float | None = None, extra_flops: float = 0.0) -> Budget:
    """Check a budget given per prompt (samples: average generations per prompt;
    flops: average FLOPs per prompt) and return the batch's Budget.

    Refuses budgets <= 0 and budgets below one greedy pass per prompt, stating
    the minimum. extra_flops: what the policy's estimators cost for the batch."""
    if samples is None and flops is None:
        return Budget()
    out = Budget()
    if samples is not None:
        if not np.isfinite(samples) or samples <= 0:
            raise CollmError(f"the budget must be > 0 samples per prompt (got {samples:g}); the minimum is 1 (one greedy pass)")
        if samples < 1:
            raise CollmError(f"a budget of {samples:g} samples per prompt is below one greedy pass per prompt; the minimum is 1")
        out.samples = float(samples) * n_prompts
    if flops is not None:
        least = (minimum_flops(prompt_tokens, params, max_tokens) + extra_flops) / max(n_prompts, 1)
        if not np.isfinite(flops) or flops <= 0:
            raise CollmError(f"the budget must be > 0 FLOPs per prompt (got {flops:g}); the minimum here is {least:.4g}")
        if flops < least:
            raise CollmError(f"a budget of {flops:.4g} FLOPs per prompt is below one greedy pass per prompt "
                             f"({max_tokens} tokens at most) plus the estimators; the minimum here is {least:.4g} FLOPs per prompt")
        out.flops = float(flops) * n_prompts
    return out
