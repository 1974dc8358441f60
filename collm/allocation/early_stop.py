"""Early stopping (adaptive-consistency style): greedy pass first, then
samples in rounds; a prompt stops once more samples are unlikely to change
its majority: P(leader's rate > runner-up's) under Beta(c1 + 1, c2 + 1)
reaches `conf` (Aggarwal et al. 2023's Beta stopping criterion), never
before n_min generations nor beyond n_max. (conf, n_max) is calibrated on the pilot bank: the
pair with the best pilot accuracy among those within the target budget (the
spend moves in steps with conf alone, since counts are small)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field
from scipy.special import betainc

from collm.allocation.base import Count, Number, Params, Policy, register
from collm.allocation.replay import replay, summary
from collm.samplers import tally

GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 33)


def next_grid(m: int, grid=GRID) -> int:
    for g in grid:
        if g > m:
            return g
    return m + 1


@register
class EarlyStop(Policy):
    kind = "early-stop"
    learned = ("conf", "n_max")

    class Params(Params):
        conf: Annotated[Number, Field(gt=0, lt=1)] = 0.95
        n_min: Count = 1
        n_max: Count = 33

    CONFS = (0.7, 0.8, 0.875, 0.9, 0.94, 0.97, 0.985, 0.995, 0.999)
    N_MAXS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 33)

    def fit(self, view, samples=None, flops=None):
        super().fit(view, samples, flops)
        if samples is None and flops is None:
            return self
        target, key = (samples, "samples") if samples is not None else (flops, "flops")
        best = None
        for n_max in self.N_MAXS:
            for conf in self.CONFS:
                self.state.update(conf=conf, n_max=min(n_max, view.K + 1))
                r = summary([replay(self, view, 101)])
                if r[key] <= target and (best is None or r["accuracy"] > best[0]):
                    best = (r["accuracy"], conf, self.state["n_max"])
                if r[key] > target:
                    break  # a higher conf only spends more
        if best is None:
            best = (0, self.CONFS[0], 2)
        self.state.update(conf=best[1], n_max=best[2])
        return self

    def check_state(self):
        conf, n_max = self.state.get("conf", 0.5), self.state.get("n_max", 1)
        if not (isinstance(conf, (int, float)) and 0 < conf < 1) or not isinstance(n_max, int) or n_max < 1:
            raise ValueError("conf must lie in (0, 1) and n_max be a whole number >= 1")

    def stopped(self, draws) -> bool:
        t = tally(draws, self.value("vote_cut"))
        c = sorted((v[0] for v in t.values()), reverse=True) + [0, 0]
        # P(p1 > p2) for (p1, p2) ~ Beta(c1 + 1, c2 + 1) restricted to the two: I_{1/2}(c2 + 1, c1 + 1)
        return float(betainc(c[1] + 1, c[0] + 1, 0.5)) >= self.value("conf")

    def run(self, sampler):
        idx = np.arange(sampler.P)
        sampler.request(idx, 1, greedy=True)
        n_max, n_min = self.value("n_max"), self.value("n_min")
        avail = getattr(sampler, "available", lambda: np.full(sampler.P, 10**9))
        while True:
            left = avail()
            act = [j for j in range(sampler.P) if sampler.gens[j] < n_max and left[j] > 0
                   and sampler.gens[j] >= 1
                   and (sampler.gens[j] < n_min or not self.stopped(sampler.draws[j]))]
            if not act:
                return
            ks = [min(next_grid(int(sampler.gens[j])), n_max) - int(sampler.gens[j]) for j in act]
            ks = [min(k, int(left[j])) for k, j in zip(ks, act)]
            if len(sampler.request(act, ks)) == 0:
                return
