"""The seed's schedule N(d): a difficulty d in [0, 1] per prompt, predicted
before sampling by a learned predictor over cheap signals (question length,
prefix entropy, greedy NLL); greedy only below a threshold tau, and above it

    N(d) = 1 + ceil(a * ((d - tau) / (1 - tau)) ** beta),  capped at n_max

generations (beta = 2 by default). tau and the slope a are fitted on the
pilot bank for the target budget: for each tau on a grid of quantiles, a is
set by bisection to spend the budget, and the (tau, a) with the best pilot
accuracy is kept."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from collm.allocation.base import Count, Number, Params, Policy, register
from collm.allocation.replay import bisect_knob, replay, summary
from collm.difficulty import LearnedDifficulty
from collm.difficulty import values as signal_values
from collm.difficulty.signals import SIGNALS

Signal = Literal[SIGNALS]


@register
class Schedule(Policy):
    kind = "schedule"
    learned = ("tau", "a")

    class Params(Params):
        tau: Annotated[Number, Field(ge=0, le=1)] = 0.5
        a: Annotated[Number, Field(ge=0)] = 8.0
        beta: Annotated[Number, Field(gt=0)] = 2.0
        n_max: Count = 33
        k: Count = 32
        signals: Annotated[list[Signal], Field(min_length=1)] = ["q_tokens", "prefix_entropy", "greedy_nll"]

    @property
    def needs_prompt_signals(self) -> bool:
        return bool({"prefix_entropy", "prompt_nll"} & set(self.params["signals"]))

    def _signals(self, sampler) -> dict:
        vals = {}
        for name in self.params["signals"]:
            v, f = signal_values(sampler, name, k=self.params["k"])
            if f.any() and not sampler.charge_estimator(np.arange(sampler.P), f):
                v = np.full(sampler.P, float(self.state["difficulty"]["mean"][len(vals)]))  # not affordable: the mean
            vals[name] = v
        return vals

    def difficulty(self, sampler) -> np.ndarray:
        return LearnedDifficulty.from_dict(self.state["difficulty"]).predict(self._signals(sampler))

    def n_of(self, d) -> np.ndarray:
        tau, a, beta, n_max = self.value("tau"), self.value("a"), self.params["beta"], self.params["n_max"]
        x = np.clip((np.asarray(d) - tau) / max(1 - tau, 1e-9), 0, None)
        n = 1 + np.ceil(a * x ** beta)
        return np.where(np.asarray(d) < tau, 1, np.minimum(n, n_max)).astype(int)

    def check_state(self):
        if "difficulty" not in self.state:
            raise ValueError("no difficulty model: the policy was never fitted")
        LearnedDifficulty.from_dict(self.state["difficulty"])

    def fit(self, view, samples=None, flops=None):
        super().fit(view, samples, flops)
        s = view.sampler(0)
        s.request(np.arange(s.P), 1, greedy=True)
        vals = {name: signal_values(s, name, k=self.params["k"])[0] for name in self.params["signals"]}
        model = LearnedDifficulty(self.params["signals"]).fit(vals, view.A["ok"].mean(1))
        self.state["difficulty"] = model.to_dict()
        if samples is None and flops is None:
            return self
        target, key = (samples, "samples") if samples is not None else (flops, "flops")
        d = model.predict(vals)
        seeds = (101, 102)
        best = None
        for q in (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8):
            self.state["tau"] = float(np.quantile(d, q)) if q > 0 else 0.0

            def set_a(a):
                self.state["a"] = float(a)

            bisect_knob(set_a, lambda: summary([replay(self, view, sd) for sd in seeds])[key], target,
                        0.0, 200.0, increasing=True, iters=14)
            res = summary([replay(self, view, sd) for sd in seeds])
            if best is None or res["accuracy"] > best[0]:
                best = (res["accuracy"], self.state["tau"], self.state["a"])
        self.state["tau"], self.state["a"] = best[1], best[2]
        return self

    def run(self, sampler):
        idx = np.arange(sampler.P)
        sampler.request(idx, 1, greedy=True)
        n = self.n_of(self.difficulty(sampler))
        left = getattr(sampler, "available", lambda: np.full(sampler.P, 10**9))()
        more = np.minimum(n - sampler.gens, left)
        order = np.argsort(-more, kind="stable")
        order = order[more[order] > 0]
        if len(order):
            sampler.request(order, more[order])
