"""The sampler's common part: one draw (Draw), the budget meter every policy
runs against (Sampler) and what a prompt's draws vote (tally, leader).

Votes: every draw with an answer votes once, the greedy pass included; a
draw cut at max_tokens never votes (the rule live strategies follow) unless
vote_cut. Ties go to the answer drawn first, and the greedy pass is drawn
first. With an answer form ("nonneg_int": GSM8K, whose answers are all whole
numbers >= 0), answers of another form are implausible: they never win while
a plausible answer has a vote.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from collm.budget import Budget
from collm.errors import CollmError
from collm.flops import inference_flops


class Draw(NamedTuple):
    key: object  # answer (a hashable key) or None when there is none
    tokens: int
    lp: float  # summed log-prob of the generated tokens
    cut: bool  # stopped at max_tokens: its answer never votes
    greedy: bool
    value: float | None = None  # the answer as a number, when it is one
    slips: int | None = None  # arithmetic slips in its text (verifiers.arithmetic); None: text unknown


class Meter:
    """What a batch may still spend: its budget, less what was spent and what
    is reserved for requests under way. Thread-safe: the per-prompt samplers
    of a live batch run in threads and share one (collm.samplers.live)."""

    def __init__(self, budget: Budget | None = None):
        self.budget = budget or Budget()
        self.spent_flops = self.spent_samples = 0.0
        self.reserved_flops = self.reserved_samples = 0.0
        self.lock = threading.Lock()

    def left_flops(self) -> float:
        with self.lock:
            return self._left_flops()

    def left_samples(self) -> float:
        with self.lock:
            return self._left_samples()

    def _left_flops(self) -> float:
        b = self.budget.flops
        return np.inf if b is None else b - self.spent_flops - self.reserved_flops

    def _left_samples(self) -> float:
        b = self.budget.samples
        return np.inf if b is None else b - self.spent_samples - self.reserved_samples

    def reserve(self, flops: float, samples: int) -> bool:
        """Hold a request's worst case, if it fits what is left."""
        with self.lock:
            if flops > self._left_flops() or samples > self._left_samples():
                return False
            self.reserved_flops += flops
            self.reserved_samples += samples
            return True

    def swap(self, held: tuple[float, int], flops: float, samples: int) -> bool:
        """Turn a hold into a request's hold, if the request fits once the old hold is given back."""
        with self.lock:
            self.reserved_flops -= held[0]
            self.reserved_samples -= held[1]
            if flops > self._left_flops() or samples > self._left_samples():
                self.reserved_flops += held[0]
                self.reserved_samples += held[1]
                return False
            self.reserved_flops += flops
            self.reserved_samples += samples
            return True

    def settle(self, reserved_flops: float, reserved_samples: int, flops: float, samples: int) -> None:
        """A request is done: its hold goes, what it really cost stays."""
        with self.lock:
            self.reserved_flops -= reserved_flops
            self.reserved_samples -= reserved_samples
            self.spent_flops += flops
            self.spent_samples += samples

    def charge(self, flops: float) -> bool:
        """Pay an estimator's cost at once, if it fits (False: nothing paid)."""
        with self.lock:
            if flops > self._left_flops():
                return False
            self.spent_flops += flops
            return True


class Sampler:
    """Budget meter and draw store shared by the bank and live samplers."""

    prefill_every_call = False  # live engines without a prefix cache pay the prompt again

    def __init__(self, prompt_tokens, q_tokens, params: int, max_tokens: int, budget: Budget | None = None,
                 meter: Meter | None = None):
        self.prompt_tokens = np.asarray(prompt_tokens, np.int64)
        self.q_tokens = np.asarray(q_tokens, np.int64)
        self.P = len(self.prompt_tokens)
        self.params = int(params)
        self.max_tokens = int(max_tokens)
        self.meter = meter or Meter(budget)
        self.flops = np.zeros(self.P)
        self.est_flops = np.zeros(self.P)
        self.gens = np.zeros(self.P, np.int64)
        self.prefilled = np.zeros(self.P, bool)
        self.draws: list[list[Draw]] = [[] for _ in range(self.P)]
        self.calls = 0
        self._actual: dict[int, float] = {}  # engines that report their own cost put it here
        self.prepaid: dict[int, tuple[float, int]] = {}  # prompt -> a hold its first request may take over

    @property
    def budget(self) -> Budget:
        return self.meter.budget

    @budget.setter
    def budget(self, budget: Budget) -> None:
        self.meter = Meter(budget)

    def run(self, policy) -> None:
        """Let `policy` spend this sampler's budget (its run(sampler), round by round)."""
        policy.run(self)

    # ---- the meter ----
    @property
    def spent_flops(self) -> float:
        return float(self.flops.sum() + self.est_flops.sum())

    def left_flops(self) -> float:
        return self.meter.left_flops()

    def left_samples(self) -> float:
        return self.meter.left_samples()

    def worst_case(self, j: int, k: int) -> float:
        prefill = 0 if (self.prefilled[j] and not self.prefill_every_call) else int(self.prompt_tokens[j])
        return inference_flops(self.params, prefill + k * self.max_tokens)

    def admit(self, idx, ks) -> tuple[np.ndarray, np.ndarray]:
        """The requests (in the given priority order) whose worst case fits what is
        left; each one's worst case is held (self._held) until it is served."""
        keep, kk = [], []
        for j, k in zip(idx, ks):
            k = int(k)
            if k < 1:
                continue
            w = self.worst_case(int(j), k)
            held = self.prepaid.pop(int(j), None)
            if (self.meter.swap(held, w, k) if held is not None else self.meter.reserve(w, k)):
                self._held.append((w, k))
                keep.append(int(j))
                kk.append(k)
            elif held is not None:
                self.prepaid[int(j)] = held
        return np.array(keep, np.int64), np.array(kk, np.int64)

    def request(self, idx, ks, greedy: bool = False) -> np.ndarray:
        """Generate ks[i] more samples (or the greedy pass) for prompts idx[i],
        highest priority first; returns the prompts served."""
        idx = np.atleast_1d(np.asarray(idx, np.int64))
        ks = np.broadcast_to(np.atleast_1d(np.asarray(ks, np.int64)), idx.shape)
        if greedy:
            ks = np.ones_like(idx)
        self._held: list[tuple[float, int]] = []
        idx, ks = self.admit(idx, ks)
        held, self._held = self._held, []
        if len(idx) == 0:
            return idx
        try:
            new = self._generate(idx, ks, greedy)
        except BaseException:
            for w, k in held:
                self.meter.settle(w, k, 0.0, 0)
            raise
        self.calls += 1
        for (w, _), j, k, ds in zip(held, idx, ks, new):
            tokens = sum(d.tokens for d in ds)
            prefill = 0 if (self.prefilled[j] and not self.prefill_every_call) else int(self.prompt_tokens[j])
            cost = self._actual.pop(int(j), inference_flops(self.params, prefill + tokens))
            self.flops[j] += cost
            self.meter.settle(w, int(k), cost, int(k))
            self.prefilled[j] = True
            self.gens[j] += k
            self.draws[j].extend(ds)
        return idx

    def charge_estimator(self, idx, flops) -> bool:
        """Pay an estimator's cost for prompts idx; False (nothing paid) if it does not fit."""
        flops = np.broadcast_to(np.asarray(flops, float), np.shape(idx))
        if not self.meter.charge(float(flops.sum())):
            return False
        np.add.at(self.est_flops, np.asarray(idx, np.int64), flops)
        return True

    # ---- what engines provide ----
    def _generate(self, idx: np.ndarray, ks: np.ndarray, greedy: bool) -> list[list[Draw]]:
        raise NotImplementedError

    def signal(self, name: str, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """A prompt-level signal for every prompt and its FLOPs per prompt
        (not yet charged): "q_tokens", "prefix_entropy" (mean over the first
        k question tokens), "prompt_nll" (mean over the question)."""
        if name == "q_tokens":
            return self.q_tokens.astype(float), np.zeros(self.P)
        raise CollmError(f"this sampler has no signal {name!r}")


def plausible(d, form: str | None) -> bool:
    if form is None:
        return True
    if form == "nonneg_int":
        return d.value is not None and d.value >= 0 and d.value == int(d.value)
    return True


def tally(draws, vote_cut: bool = False, form: str | None = None) -> dict:
    """answer -> [votes, summed log-prob per token, plausible], in first-drawn order."""
    out: dict = {}
    for d in draws:
        if d.key is None or (d.cut and not vote_cut):
            continue
        t = out.setdefault(d.key, [0, 0.0, plausible(d, form)])
        t[0] += 1
        t[1] += d.lp / max(d.tokens, 1)
    return out


def leader(draws, vote_cut: bool = False, form: str | None = None):
    """The majority answer (plausible answers first; ties: drawn first) and the tally."""
    t = tally(draws, vote_cut, form)
    best, best_c = None, (-1, -1)
    for k, (c, _, ok) in t.items():
        if (ok, c) > best_c:
            best, best_c = k, (ok, c)
    return best, t


def as_number(a) -> float | None:
    try:
        x = float(str(a).replace(",", ""))
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None
