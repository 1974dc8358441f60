"""A backend that answers from a sample bank instead of a model.

Strategies and policies run on it unchanged, at no model cost, on the same
draws every time: a problem's samples are served in the seeded order
np.random.default_rng([seed, i]).permutation(K) (collm.bank.draws, the order
`collm eval` replays), each generate() call handing out the next n samples
not yet served. Asking for more than the bank holds is an error, never a
silent repeat. temperature 0 returns the bank's greedy decode.

A prompt is matched to its problem by Prompt.id (the dataset row i), else by
its question text in the bank's dataset (named in the bank's header).

Completions carry the sample's answer as "\\boxed{ANSWER}" (empty text when
the sample had none), so every extractor recovers it; tokens, logprob and
finish reason are the sample's. Usage counts a problem's prompt once (the
first time the problem is asked, as a prefix cache would) plus every served
token, at 2 x the bank model's params per token.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from collm.backends.base import Backend
from collm.bank.format import Bank, BankProblem, BankSample, load_bank
from collm.datasets import load_dataset
from collm.errors import CollmError
from collm.flops import inference_flops
from collm.prompts import Prompt, as_prompt
from collm.types import Completion, Generation, PromptScore, SamplingParams, Usage


def answer_text(a) -> str:
    if a is None:
        return ""
    if isinstance(a, float):
        return str(int(a)) if a == int(a) else repr(a)
    return str(a)


class ReplayBackend(Backend):
    name = "replay"

    def __init__(self, bank: Bank | str, seed: int = 0, params: int | None = None):
        self.bank = load_bank(bank) if isinstance(bank, (str, os.PathLike)) else bank
        self.seed = int(seed)
        self.params = int(params) if params else self.bank.params
        self.model_id = self.bank.model_key or f"bank:{self.bank.path}"
        self.context_length = 1 << 30  # a bank has no context limit of its own
        self._by_row: dict[int, BankProblem] = {p.i: p for p in self.bank.problems}
        self._by_question: dict[str, int] | None = None
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget what was served: the next calls start the draw orders again."""
        if seed is not None:
            self.seed = int(seed)
        self._served: dict[int, int] = {}
        self._order: dict[int, np.ndarray] = {}
        self._prefilled: set[int] = set()

    # ---- matching prompts to problems ----
    def problem(self, prompt: Prompt | str) -> BankProblem:
        p = as_prompt(prompt)
        if p.id is not None:
            try:
                row = int(p.id)
            except (TypeError, ValueError):
                raise CollmError(f"prompt id {p.id!r} is not a dataset row of {self.bank.path}") from None
            if row not in self._by_row:
                raise CollmError(f"problem {row} is not in the bank {self.bank.path}")
            return self._by_row[row]
        row = self._questions().get(p.question.strip())
        if row is None or row not in self._by_row:
            raise CollmError(f"the question is not in the bank {self.bank.path} (give Prompt.id = dataset row)")
        return self._by_row[row]

    def _questions(self) -> dict[str, int]:
        if self._by_question is None:
            name, split = self.bank.header.get("dataset"), self.bank.header.get("split", "test")
            if not name:
                raise CollmError(f"the bank {self.bank.path} names no dataset: match prompts by Prompt.id")
            self._by_question = {pr.question.strip(): pr.id for pr in load_dataset(name, split)}
        return self._by_question

    # ---- the Backend interface ----
    def _usage(self, prob: BankProblem, completions: list[Completion]) -> Usage:
        prompt = 0 if prob.i in self._prefilled else prob.prompt_tokens
        self._prefilled.add(prob.i)
        done = sum(c.tokens for c in completions)
        return Usage(prompt, done, inference_flops(self.params, prompt + done))

    def next_samples(self, prob: BankProblem, n: int) -> list[BankSample]:
        K = len(prob.samples)
        got = self._served.get(prob.i, 0)
        if got + n > K:
            raise CollmError(f"the bank {self.bank.path} holds {K} samples for problem {prob.i}; "
                             f"{got} were served and {n} more were asked")
        if prob.i not in self._order:
            self._order[prob.i] = np.random.default_rng([self.seed, prob.i]).permutation(K)
        self._served[prob.i] = got + n
        return [prob.samples[j] for j in self._order[prob.i][got:got + n]]

    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None) -> list[Generation]:
        """The next n samples of each prompt's problem in the replay order
        (offsets are not needed: the backend counts what it served)."""
        prompts, params = self.check_request(prompts, n, params)
        out = []
        for p in prompts:
            prob = self.problem(p)
            picked = [prob.greedy] * n if params.greedy else self.next_samples(prob, n)
            comps = [Completion(text=f"\\boxed{{{answer_text(s.a)}}}" if s.a is not None else "", tokens=s.n,
                                logprob=s.lp, finish_reason=s.f or "stop") for s in picked]
            out.append(Generation(comps, self._usage(prob, comps)))
        return out

    def count_prompt_tokens(self, prompt: Prompt | str) -> tuple[int, int]:
        prob = self.problem(prompt)
        return prob.prompt_tokens, max(1, prob.q_tokens)

    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]:
        """The bank's prefix signal: q_entropy / q_nll over the question span
        (token ids are not kept in a bank: they read as 0). Costs one prefill."""
        out = []
        for p in prompts:
            prob = self.problem(p)
            q = len(prob.q_entropy)
            length = max(prob.prompt_tokens, q + 1)
            ent: list[float | None] = [None] * length
            lps: list[float | None] = [None] * length
            ent[1:1 + q] = prob.q_entropy
            lps[1:1 + len(prob.q_nll)] = [-x for x in prob.q_nll]
            out.append(PromptScore([0] * length, ent, lps, (1, 1 + q),
                                   Usage(prob.prompt_tokens, 0, inference_flops(self.params, prob.prompt_tokens))))
        return out

    def describe(self) -> dict:
        return {**super().describe(), "bank": self.bank.path, "k": self.bank.k, "seed": self.seed}
