"""Predicted difficulty bins: Snell et al.'s five bins without the oracle.

Snell et al. bin questions by the base model's pass@1 measured from many
samples (2048 in the paper), which costs more than answering them. This
predictor bins them from signals known before any generation (question
length, prefix entropy, prompt NLL: one forward pass over the question): a
LearnedDifficulty fitted on a pilot bank's pass rates, whose predictions are
cut at the pilot's quantiles, so that each predicted bin holds about the same
share of questions, bin 1 the easiest.

    bins = DifficultyBins().fit(bank_values(bank), pass_rate)
    level = bins.predict(values)           # [P] ints in 1..n_bins
    values, flops = live_values(backend, prompts, bins.signals, bins.k)
"""

from __future__ import annotations

import numpy as np

from collm.answers import get_task
from collm.difficulty.learned import LearnedDifficulty
from collm.difficulty.signals import values
from collm.errors import CollmError
from collm.samplers import LiveSampler

PRE_GENERATION = ("q_tokens", "prefix_entropy", "prompt_nll")


class DifficultyBins:
    def __init__(self, signals=PRE_GENERATION, n_bins: int = 5, k: int = 32, l2: float = 1.0):
        bad = [s for s in signals if s not in PRE_GENERATION]
        if bad:
            raise CollmError(f"difficulty bins are predicted before generation; {', '.join(bad)} "
                             f"needs generations (use {', '.join(PRE_GENERATION)})")
        if n_bins < 1:
            raise CollmError(f"n_bins must be at least 1 (got {n_bins})")
        self.signals, self.n_bins, self.k, self.l2 = tuple(signals), int(n_bins), int(k), float(l2)
        self.model: LearnedDifficulty | None = None
        self.edges: np.ndarray | None = None

    def fit(self, values: dict, pass_rate) -> "DifficultyBins":
        y = np.asarray(pass_rate, float)
        if len(y) < self.n_bins:
            raise CollmError(f"cannot cut {len(y)} problems into {self.n_bins} bins")
        self.model = LearnedDifficulty(self.signals, self.l2).fit(values, y)
        d = self.model.predict(values)
        self.edges = np.quantile(d, np.arange(1, self.n_bins) / self.n_bins)
        return self

    def difficulty(self, values: dict) -> np.ndarray:
        if self.model is None:
            raise CollmError("the difficulty bins are not fitted")
        return self.model.predict(values)

    def predict(self, values: dict) -> np.ndarray:
        """Bin 1 (easiest) .. n_bins of each prompt."""
        return np.searchsorted(self.edges, self.difficulty(values), side="right") + 1

    def to_dict(self) -> dict:
        return {"signals": list(self.signals), "n_bins": self.n_bins, "k": self.k, "l2": self.l2,
                "model": self.model.to_dict(), "edges": [float(e) for e in self.edges]}

    @classmethod
    def from_dict(cls, d: dict) -> "DifficultyBins":
        try:
            b = cls(d["signals"], d["n_bins"], d.get("k", 32), d.get("l2", 1.0))
            b.model = LearnedDifficulty.from_dict(d["model"])
            b.edges = np.asarray(d["edges"], float)
        except (KeyError, TypeError, ValueError) as e:
            raise CollmError(f"malformed difficulty bins ({e})") from None
        if len(b.edges) != b.n_bins - 1:
            raise CollmError(f"malformed difficulty bins: {len(b.edges)} edges for {b.n_bins} bins")
        return b


def bank_values(view, signals=PRE_GENERATION, k: int = 32) -> tuple[dict, np.ndarray]:
    """Each signal for every problem of a bank (a collm.allocation.replay.BankView),
    and what computing them costs per problem in FLOPs."""
    return _collect(view.sampler(0), signals, k, values)


def live_values(backend, prompts, signals=PRE_GENERATION, k: int = 32, task=None) -> tuple[dict, np.ndarray]:
    """The same signals measured on a live backend (one forward pass over each
    question when prefix entropy or prompt NLL is asked for)."""
    return _collect(LiveSampler(backend, prompts, task or get_task("gsm8k")), signals, k, values)


def _collect(sampler, signals, k, values):
    out, cost = {}, np.zeros(sampler.P)
    for s in dict.fromkeys(signals):
        v, f = values(sampler, s, k)
        out[s] = v
        # the two prompt-pass signals share one forward pass: charge it once
        cost = np.maximum(cost, f) if s in ("prefix_entropy", "prompt_nll") else cost + f
    return out, cost
