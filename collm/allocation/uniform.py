"""Uniform best-of-N: N samples for every prompt, majority vote. The baseline
every other policy is measured against (cut samples vote, as in the bank's
own majority curves; no greedy pass)."""

from __future__ import annotations

import numpy as np

from collm.allocation.base import Policy, register


@register
class Uniform(Policy):
    kind = "uniform"
    defaults = {"n": 8, "vote_cut": True}

    def fit(self, view, samples=None, flops=None):
        super().fit(view, samples, flops)
        if samples is not None:
            n = samples
        elif flops is not None:
            per = 2.0 * view.params
            n = (flops / per - view.A["prompt_tokens"].mean()) / view.mean_sample_tokens
        else:
            n = self.params["n"]
        self.params["n"] = int(np.clip(np.floor(n + 1e-9), 1, view.K))
        return self

    def run(self, sampler):
        idx = np.arange(sampler.P)
        sampler.request(idx, 1)  # one each first, so a tight budget still answers every prompt
        if self.params["n"] > 1:
            sampler.request(idx, self.params["n"] - 1)
