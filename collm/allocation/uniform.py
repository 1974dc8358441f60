"""Uniform best-of-N: N samples for every prompt, majority vote. The baseline
every other policy is measured against (cut samples vote, as in the bank's
own majority curves; no greedy pass)."""

from __future__ import annotations

import numpy as np
from pydantic import StrictBool

from collm.allocation.base import Count, Params, Policy, register


@register
class Uniform(Policy):
    kind = "uniform"
    learned = ("n",)

    class Params(Params):
        n: Count = 8
        vote_cut: StrictBool = True

    def fit(self, view, samples=None, flops=None):
        super().fit(view, samples, flops)
        if samples is not None:
            n = samples
        elif flops is not None:
            per = 2.0 * view.params
            n = (flops / per - view.A["prompt_tokens"].mean()) / view.mean_sample_tokens
        else:
            n = self.params["n"]  # as given, within what the bank holds
        self.state["n"] = int(np.clip(np.floor(n + 1e-9), 1, view.K))
        return self

    def check_state(self):
        if "n" in self.state and (not isinstance(self.state["n"], int) or self.state["n"] < 1):
            raise ValueError("n must be a whole number >= 1")

    def run(self, sampler):
        idx = np.arange(sampler.P)
        n = self.value("n")
        sampler.request(idx, 1)  # one each first, so a tight budget still answers every prompt
        if n > 1:
            sampler.request(idx, n - 1)
