"""Samplers: the one round-based interface every policy runs on.

A policy asks a sampler for more generations of some prompts (`request`),
sees what came back (`draws`), and asks again, round after round. The same
policy code therefore runs on a bank replay (BankSampler: the bank's samples
in the seeded draw order of collm.bank.draws, vectorised and free) and on a
live model (LiveSampler: batched Backend.generate calls, one per round and
sample count).

The sampler is also the meter: it charges every request its worst case
before serving it (collm.allocation.budget) and refuses what does not fit,
so no policy can overspend, and it records each prompt's FLOPs, generations
and the estimators' share.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np

from collm.allocation.budget import Budget
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


class Sampler:
    """Budget meter and draw store shared by the bank and live samplers."""

    prefill_every_call = False  # live engines without a prefix cache pay the prompt again

    def __init__(self, prompt_tokens, q_tokens, params: int, max_tokens: int, budget: Budget | None = None):
        self.prompt_tokens = np.asarray(prompt_tokens, np.int64)
        self.q_tokens = np.asarray(q_tokens, np.int64)
        self.P = len(self.prompt_tokens)
        self.params = int(params)
        self.max_tokens = int(max_tokens)
        self.budget = budget or Budget()
        self.flops = np.zeros(self.P)
        self.est_flops = np.zeros(self.P)
        self.gens = np.zeros(self.P, np.int64)
        self.prefilled = np.zeros(self.P, bool)
        self.draws: list[list[Draw]] = [[] for _ in range(self.P)]
        self.calls = 0
        self._actual: dict[int, float] = {}  # engines that report their own cost put it here

    # ---- the meter ----
    @property
    def spent_flops(self) -> float:
        return float(self.flops.sum() + self.est_flops.sum())

    def left_flops(self) -> float:
        return np.inf if self.budget.flops is None else self.budget.flops - self.spent_flops

    def left_samples(self) -> float:
        return np.inf if self.budget.samples is None else self.budget.samples - float(self.gens.sum())

    def worst_case(self, j: int, k: int) -> float:
        prefill = 0 if (self.prefilled[j] and not self.prefill_every_call) else int(self.prompt_tokens[j])
        return inference_flops(self.params, prefill + k * self.max_tokens)

    def admit(self, idx, ks) -> tuple[np.ndarray, np.ndarray]:
        """The requests (in the given priority order) whose worst case fits what is left."""
        left_f, left_s = self.left_flops(), self.left_samples()
        keep, kk = [], []
        for j, k in zip(idx, ks):
            k = int(k)
            if k < 1:
                continue
            w = self.worst_case(int(j), k)
            if w <= left_f and k <= left_s:
                left_f -= w
                left_s -= k
                keep.append(int(j))
                kk.append(k)
        return np.array(keep, np.int64), np.array(kk, np.int64)

    def request(self, idx, ks, greedy: bool = False) -> np.ndarray:
        """Generate ks[i] more samples (or the greedy pass) for prompts idx[i],
        highest priority first; returns the prompts served."""
        idx = np.atleast_1d(np.asarray(idx, np.int64))
        ks = np.broadcast_to(np.atleast_1d(np.asarray(ks, np.int64)), idx.shape)
        if greedy:
            ks = np.ones_like(idx)
        idx, ks = self.admit(idx, ks)
        if len(idx) == 0:
            return idx
        new = self._generate(idx, ks, greedy)
        self.calls += 1
        for j, k, ds in zip(idx, ks, new):
            tokens = sum(d.tokens for d in ds)
            prefill = 0 if (self.prefilled[j] and not self.prefill_every_call) else int(self.prompt_tokens[j])
            self.flops[j] += self._actual.pop(int(j), inference_flops(self.params, prefill + tokens))
            self.prefilled[j] = True
            self.gens[j] += k
            self.draws[j].extend(ds)
        return idx

    def charge_estimator(self, idx, flops) -> bool:
        """Pay an estimator's cost for prompts idx; False (nothing paid) if it does not fit."""
        flops = np.broadcast_to(np.asarray(flops, float), np.shape(idx))
        if float(flops.sum()) > self.left_flops():
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


class BankSampler(Sampler):
    """Replays a bank: prompt j's samples are served in the seeded order
    draws.orders(rows, K, seed); the greedy pass is the bank's greedy decode."""

    def __init__(self, arrays: dict, rows, seed: int, params: int, max_tokens: int, budget: Budget | None = None,
                 q_entropy=None, q_nll=None):
        super().__init__(arrays["prompt_tokens"], arrays["q_tokens"], params, max_tokens, budget)
        from collm.bank.draws import orders

        self.A = arrays
        K = arrays["ans"].shape[1]
        self.order = orders(rows, K, seed)
        self.served = np.zeros(self.P, np.int64)
        self._q_entropy, self._q_nll = q_entropy, q_nll
        ans, ok = arrays["ans"], arrays["ok"]
        C = max(int(ans.max()), int(arrays["greedy_ans"].max())) + 1
        self.code_ok = np.zeros((self.P, max(C, 1)), bool)
        r, c = np.nonzero(ans >= 0)
        self.code_ok[r, ans[r, c]] = ok[r, c]
        g = arrays["greedy_ans"]
        m = g >= 0
        self.code_ok[np.nonzero(m)[0], g[m]] |= arrays["greedy_ok"][m]

    @property
    def K(self) -> int:
        return self.A["ans"].shape[1]

    def _generate(self, idx, ks, greedy):
        A, out = self.A, []
        for j, k in zip(idx, ks):
            if greedy:
                n = int(A["greedy_n"][j])
                a = int(A["greedy_ans"][j])
                lp = float(A["greedy_lp"][j]) if "greedy_lp" in A else 0.0
                gs = int(A["greedy_slips"][j]) if "greedy_slips" in A else -1
                out.append([self._draw(n, a, lp, True, j, gs)])
                continue
            s = int(self.served[j])
            if s + k > self.K:
                raise CollmError(f"asked for {s + k} samples of a problem; the bank holds {self.K}")
            cols = self.order[j, s:s + k]
            self.served[j] = s + k
            sl = A.get("slips")
            out.append([self._draw(int(A["ntok"][j, c]), int(A["ans"][j, c]), float(A["lp"][j, c]), False, j,
                                   int(sl[j, c]) if sl is not None else -1) for c in cols])
        return out

    def _draw(self, n: int, code: int, lp: float, greedy: bool, j: int, slips: int) -> Draw:
        """One bank sample as a run capped at self.max_tokens would have seen
        it. Below the cap it is the same sample (the cap only stops a
        generation). A sample the bank holds cut at this very cap is cut here
        too. A longer one (a replay capped below the bank's own max_tokens)
        stops at the cap and pays it; its text there is unknown, so it has no
        answer (a cut draw never votes anyway) and its log-prob is prorated.
        code and slips are the bank's integers, -1 for none."""
        if n > self.max_tokens:
            return Draw(None, self.max_tokens, lp * self.max_tokens / n, True, greedy, None, None)
        return Draw(code if code >= 0 else None, n, lp, n >= self.max_tokens, greedy, self._value(j, code),
                    slips if slips >= 0 else None)

    def _value(self, j: int, code: int) -> float | None:
        cv = self.A.get("code_value")
        if cv is None or code < 0 or code >= cv.shape[1] or np.isnan(cv[j, code]):
            return None
        return float(cv[j, code])

    def available(self) -> np.ndarray:
        """Samples each prompt still has in the bank."""
        return self.K - self.served

    def correct(self, j: int, key) -> bool:
        return key is not None and bool(self.code_ok[j, key])

    def signal(self, name, k=32):
        if name in ("prefix_entropy", "prompt_nll"):
            src = self._q_entropy if name == "prefix_entropy" else self._q_nll
            if src is None:
                raise CollmError(f"this bank replay was not given {name}")
            kk = k if name == "prefix_entropy" else 10**9
            vals = np.array([float(np.mean(x[:kk])) if len(x) else 0.0 for x in src])
            n = np.array([min(len(x), kk) for x in src])
            return vals, inference_flops(self.params, n).astype(float)
        return super().signal(name, k)


class LiveSampler(Sampler):
    """Runs on a Backend: one batched generate call per round and sample count."""

    prefill_every_call = True

    def __init__(self, backend, prompts, task, *, temperature: float = 0.8, top_p: float = 1.0, top_k: int = 0,
                 max_tokens: int = 512, seed: int = 0, budget: Budget | None = None, prompt_tokens=None, q_tokens=None):
        self.backend, self.prompts, self.task = backend, list(prompts), task
        self.temperature, self.top_p, self.top_k, self.seed = temperature, top_p, int(top_k), int(seed)
        if prompt_tokens is None:
            prompt_tokens, q_tokens = _count_tokens(backend, self.prompts)
        super().__init__(prompt_tokens, q_tokens, backend.params, max_tokens, budget)
        self.completions: list[list] = [[] for _ in self.prompts]
        self.usage = [None] * self.P
        self._scores = None

    def _generate(self, idx, ks, greedy):
        from collm.strategies.base import extract_all
        from collm.types import Usage
        from collm.verifiers.arithmetic import check_arithmetic

        out: dict[int, list[Draw]] = {}
        groups: dict[int, list[int]] = defaultdict(list)
        for j, k in zip(idx, ks):
            groups[int(k)].append(int(j))
        for k, js in sorted(groups.items()):
            gens = self.backend.generate([self.prompts[j] for j in js], n=k,
                                         temperature=0.0 if greedy else self.temperature, top_p=self.top_p, top_k=self.top_k,
                                         max_tokens=self.max_tokens, seed=self.seed + 7919 * self.calls + k)
            for j, g in zip(js, gens):
                answers = extract_all(g.completions, self.task)
                self.completions[j].extend(g.completions)
                self.usage[j] = (self.usage[j] or Usage()) + g.usage
                self._actual[j] = float(g.usage.flops)
                out[j] = [Draw(a, c.tokens, c.logprob, not c.finished, greedy, as_number(a),
                               check_arithmetic(c.text).wrong) for a, c in zip(answers, g.completions)]
        return [out[int(j)] for j in idx]

    def _score(self):
        if self._scores is None:
            self._scores = self.backend.score_prompt(self.prompts)
        return self._scores

    def signal(self, name, k=32):
        if name in ("prefix_entropy", "prompt_nll"):
            sc = self._score()
            src = [s.q_entropy[:k] for s in sc] if name == "prefix_entropy" else [s.q_nll for s in sc]
            vals = np.array([float(np.mean(x)) if len(x) else 0.0 for x in src])
            n = np.array([len(x) for x in src])
            return vals, inference_flops(self.params, n).astype(float)
        return super().signal(name, k)


def as_number(a) -> float | None:
    try:
        x = float(str(a).replace(",", ""))
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _count_tokens(backend, prompts):
    """Prompt and question token counts, from the backend's tokenizer when it has one."""
    count = getattr(backend, "count_prompt_tokens", None)
    if count is not None:
        pt, qt = zip(*[count(p) for p in prompts])
        return list(pt), list(qt)
    encode = getattr(backend, "encode", None)  # the embedded engines: (ids, question span)
    if encode is not None:
        enc = [encode(p) for p in prompts]
        return [len(ids) for ids, _ in enc], [max(1, e - s) for _, (s, e) in enc]
    q = [max(1, len(p.question) // 3) for p in prompts]  # a generous guess: 3 characters a token
    return [x + 64 for x in q], q
