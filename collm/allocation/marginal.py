"""The compute-optimal allocator: samples go where they buy the most
expected accuracy per FLOP.

Every prompt first gets its greedy pass (the best single generation, and a
vote). Then, in rounds, each prompt's vote state x (collm.allocation.state:
leader's and runner-up's shares, distinct answers, greedy agreement,
self-certainty gap, lengths, question length) after m generations gives

    p(m -> m2 | x) = P(the majority after m2 generations is right | x)

for every m2 on a grid of generation counts, each a small logistic model
fitted on replays of the pilot bank. The gain of going on to m2 is
p(m -> m2) - p(m -> m), its price (m2 - m) samples at this prompt's expected
length; a prompt whose best gain per sample (over all m2: one more sample
rarely breaks a 1-1 tie, three may) is below the price of compute `lam` stops
(easy ones because they are settled, hopeless ones because nothing helps),
the others step to the next grid point, best first while the budget lasts.
`lam` is calibrated on the pilot bank to the target budget.

Rounds: live, every step is a round of generations the prompt waits for,
and where the engine has rows to spare (a few prompts alone) the rounds,
not the rows, set the wall time: a prompt decided one sample at a time is a
chain of up to a dozen generations. There (step="auto", the default, when
the sampler says rounds_bound(); step="net" always) a prompt that goes on
steps instead to the grid point of greatest net gain, p(m -> m2) - p(m -> m)
less lam_rounds per sample: on the shared bank at 4 generations per question
that halves the rounds (p90 7 -> 3) for about the same accuracy. lam_rounds is
calibrated to the same budget as lam. Bank replays, and an engine whose
batch is full, step to the next grid point (fewest FLOPs per accuracy).

The answer returned (aggregate="learned", the default) is the answer a
learned group scorer rates highest (collm.allocation.aggregate: vote share,
self-certainty, greedy agreement, answer form); aggregate="majority" keeps
plain majority (greedy pass counted as a vote). With answer_form
"nonneg_int" (set from a GSM8K bank), answers that are not whole numbers >= 0
never win.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from collm.allocation.aggregate import GroupScorer
from collm.allocation.base import Count, Number, Params, Policy, register
from collm.allocation.early_stop import GRID
from collm.allocation.replay import bisect_knob, spend
from collm.allocation.state import FEATURES, features
from collm.difficulty.learned import fit_logistic, sigmoid
from collm.samplers import leader


def grid_index(m: int, grid) -> int:
    i = 0
    for j, g in enumerate(grid):
        if g <= m:
            i = j
    return i


@register
class Marginal(Policy):
    kind = "marginal"
    learned = ("lam", "lam_rounds")

    class Params(Params):
        lam: Annotated[Number, Field(ge=0)] = 0.01  # the price of one sample, in accuracy (fit sets it)
        n_max: Count = 33
        grid: Annotated[list[Count], Field(min_length=2)] = list(GRID)
        l2: Annotated[Number, Field(ge=0)] = 1.0
        fit_seeds: Count = 4
        prior_tokens: Annotated[Number, Field(ge=0)] = 2.0
        aggregate: Literal["learned", "majority"] = "learned"
        answer_form: Literal["auto", "nonneg_int"] | None = "auto"
        # how far a prompt that goes on steps: to the next grid point ("next", the most
        # adaptive), to the grid point of best gain per sample ("best"), to the one of
        # greatest net gain ("net"), to the furthest one whose gain per sample still
        # beats the price ("far": fewest rounds), or rounds_step where the sampler is
        # rounds-bound and "next" elsewhere ("auto")
        step: Literal["next", "best", "net", "far", "auto"] = "auto"
        rounds_step: Literal["best", "net", "far"] = "far"  # step "auto"'s step where rounds bind

    @property
    def form(self):
        f = self.params["answer_form"]
        return self.state.get("answer_form") if f == "auto" else f

    @property
    def scorer(self):
        if self.params["aggregate"] != "learned" or "scorer" not in self.state:
            return None
        if getattr(self, "_scorer", None) is None or self._scorer_src is not self.state["scorer"]:
            self._scorer, self._scorer_src = GroupScorer.from_dict(self.state["scorer"]), self.state["scorer"]
        return self._scorer

    def answer(self, draws):
        sc = self.scorer
        if sc is not None:
            return sc.answer(draws, self.form)
        return leader(draws, self.params["vote_cut"], self.form)[0]

    def _features(self, draws, q_tokens, max_tokens):
        return features(draws, q_tokens, max_tokens, self.params["vote_cut"], self.form, self.scorer)[1]

    def confidence(self, draws, q_tokens: int, max_tokens: int) -> float:
        """The value model's P(the answer now is right | the vote state)."""
        if not self.state.get("W"):
            return super().confidence(draws, q_tokens, max_tokens)
        a = grid_index(len(draws), self.state["grid"])
        return float(sigmoid(np.asarray(self.state["W"])[a, a] @ self._features(draws, q_tokens, max_tokens)))

    def check_state(self):
        grid, W = self.state.get("grid"), self.state.get("W")
        if not grid or W is None:
            raise ValueError("no value model: the policy was never fitted")
        if list(self.state.get("features", FEATURES)) != list(FEATURES):
            raise ValueError("the value model was fitted on other features")
        w = np.asarray(W, float)
        if w.shape != (len(grid), len(grid), len(FEATURES)) or not np.isfinite(w).all():
            raise ValueError(f"W has shape {w.shape}, expected {(len(grid), len(grid), len(FEATURES))}")
        if not all(isinstance(g, int) and g >= 1 for g in grid) or list(grid) != sorted(set(grid)):
            raise ValueError("grid must be increasing whole numbers >= 1")
        if not float(self.state.get("mean_sample_tokens", 0)) > 0:
            raise ValueError("mean_sample_tokens must be > 0")
        for k in ("lam", "lam_rounds"):
            if k in self.state and not float(self.state[k]) >= 0:
                raise ValueError(f"{k} must be >= 0")
        if "scorer" in self.state:
            GroupScorer.from_dict(self.state["scorer"])

    # ---- the value model ----
    def _trajectories(self, view, seeds):
        """Features at each grid point and correctness of the majority at each grid point."""
        grid = [g for g in self.params["grid"] if g <= view.K + 1]
        samplers = []
        for sd in seeds:
            s = view.sampler(sd)
            idx = np.arange(s.P)
            s.request(idx, 1, greedy=True)
            s.request(idx, view.K)
            samplers.append(s)
        if self.params["aggregate"] == "learned":
            self.state["scorer"] = GroupScorer().fit(samplers, grid, self.form, self.params["l2"]).to_dict()
        X, Y = [], []
        for s in samplers:
            for j in range(s.P):
                ds, qt = s.draws[j], s.q_tokens[j]
                X.append([self._features(ds[:a], qt, view.max_tokens) for a in grid])
                Y.append([s.correct(j, self.answer(ds[:b])) for b in grid])
        return grid, np.array(X), np.array(Y, float)  # [N, G, F], [N, G]

    def fit(self, view, samples=None, flops=None):
        super().fit(view, samples, flops)
        self.state = {"answer_form": getattr(view, "answer_form", None)}
        grid, X, Y = self._trajectories(view, range(1000, 1000 + self.params["fit_seeds"]))
        G, F = len(grid), X.shape[2]
        W = np.zeros((G, G, F))
        for a in range(G):
            for b in range(a, G):
                W[a, b] = fit_logistic(X[:, a], Y[:, b], self.params["l2"])
        self.state.update({"grid": grid, "features": list(FEATURES), "W": W.round(5).tolist(),
                           "mean_sample_tokens": view.mean_sample_tokens})
        if samples is None and flops is None:
            return self
        target = samples if samples is not None else flops

        auto = self.params["step"] == "auto"
        modes = ["next", self.params["rounds_step"]] if auto else [self.params["step"]]
        for i, mode in enumerate(modes):  # lam for the mode a replay runs in; lam_rounds for "auto"'s other mode
            key = "lam_rounds" if i == 1 else "lam"

            def set_knob(z, key=key):  # 10^-z: the price of one sample, in accuracy
                self.state[key] = float(10 ** (-z))

            self._force = mode
            try:
                bisect_knob(set_knob, lambda: spend(self, view, (101,), samples), target, 0.5, 4.5, increasing=True,
                            iters=12)
            finally:
                self._force = None
        return self

    def calibrate_rounds(self, view, samples=None, flops=None) -> "Policy":
        """Fit lam_rounds alone (the value model and lam kept): what fit() does for step "auto"'s rounds-bound mode."""
        target = samples if samples is not None else flops

        def set_knob(z):
            self.state["lam_rounds"] = float(10 ** (-z))

        self._force = self.params["rounds_step"]
        try:
            bisect_knob(set_knob, lambda: spend(self, view, (101,), samples), target, 0.5, 4.5, increasing=True,
                        iters=12)
        finally:
            self._force = None
        return self

    def mode(self, sampler) -> str:
        """How far a prompt that goes on steps now: "next", "best", "net" or "far"."""
        step, force = self.params["step"], getattr(self, "_force", None)
        if force is not None:
            return force
        if step == "auto":
            return self.params["rounds_step"] if getattr(sampler, "rounds_bound", lambda: False)() else "next"
        return step

    def price(self, mode: str) -> float:
        """lam in the mode the policy runs in (lam_rounds for "auto"'s rounds-bound mode, when fitted)."""
        if self.params["step"] == "auto" and mode != "next" and "lam_rounds" in self.state:
            return float(self.state["lam_rounds"])
        return float(self.value("lam"))

    # ---- running ----
    def plan(self, sampler, act, mode: str = "next", lam: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """For prompts `act`: best gain per sample and the grid step to take
        (mode "net": to the grid point of greatest gain less lam per sample;
        "far": to the furthest one whose gain per sample beats lam)."""
        grid = self.state["grid"]
        W = np.asarray(self.state["W"])
        tbar = self.state["mean_sample_tokens"]
        n_max = min(self.params["n_max"], grid[-1])
        left = getattr(sampler, "available", lambda: np.full(sampler.P, 10**9))()
        ratio = np.full(len(act), -np.inf)
        step = np.zeros(len(act), np.int64)
        cache = sampler.__dict__.setdefault("_marginal_plan", {})  # a prompt's plan only changes with its draws
        for r, j in enumerate(act):
            ds = sampler.draws[j]
            m = len(ds)
            if cache.get(j, (None,))[0] == (m, mode, lam):
                ratio[r], step[r] = cache[j][1], cache[j][2]
                continue
            a = grid_index(m, grid)
            x = self._features(ds, sampler.q_tokens[j], sampler.max_tokens)
            p = sigmoid(W[a] @ x)  # [G]: p(m -> grid[b])
            top = min(n_max, m + int(left[j]))
            cost = (sum(d.tokens for d in ds) + self.params["prior_tokens"] * tbar) / (m + self.params["prior_tokens"]) / tbar
            best = net = far = None
            top_net = 0.0
            for b in range(a + 1, len(grid)):
                if grid[b] > top:
                    break
                g = (p[b] - p[a]) / ((grid[b] - m) * cost)
                if g > ratio[r]:
                    ratio[r], best = g, grid[b]
                v = (p[b] - p[a]) - lam * (grid[b] - m) * cost
                if v > top_net:
                    top_net, net = v, grid[b]
                if g > lam:
                    far = grid[b]
            nxt = next((g for g in grid if g > m), m + 1)
            if mode == "best" and best is not None:
                nxt = best
            elif mode in ("net", "far") and (net if mode == "net" else far) is not None:
                nxt = max(nxt, net if mode == "net" else far)
            step[r] = max(0, min(nxt, top) - m)
            cache[j] = ((m, mode, lam), ratio[r], step[r])
        return ratio, step

    def run(self, sampler):
        idx = np.arange(sampler.P)
        sampler.request(idx, 1, greedy=True)
        while True:
            act = np.nonzero(sampler.gens >= 1)[0]
            if len(act) == 0:
                return
            mode = self.mode(sampler)
            lam = self.price(mode)
            ratio, step = self.plan(sampler, act, mode, lam)
            go = (ratio > lam) & (step > 0)
            if not go.any():
                return
            order = np.argsort(-ratio[go], kind="stable")
            if len(sampler.request(act[go][order], step[go][order])) == 0:
                return
