"""Policies on a bank: a BankView (the bank's arrays, model and sampling
settings) hands out seeded BankSamplers, and replay() runs a policy on one."""

from __future__ import annotations

import numpy as np

from collm.bank.format import _key, has_prompt_signals
from collm.budget import Budget, make_budget
from collm.errors import CollmError
from collm.samplers import BankSampler, as_number

DEFAULT_MAX_TOKENS = 400  # the shared bank's max_new_tokens


def code_values(bank, A) -> np.ndarray:
    """[P, C] the number behind each answer code (nan: not a number), codes as Bank.arrays() gives them."""
    C = max(int(A["ans"].max()), int(A["greedy_ans"].max())) + 1
    out = np.full((len(bank.problems), max(C, 1)), np.nan)
    K = A["ans"].shape[1]
    for r, p in enumerate(bank.problems):
        codes: dict = {}
        for s in p.samples[:K]:
            if s.a is not None:
                codes.setdefault(_key(s.a), len(codes))
        if p.greedy.a is not None:
            codes.setdefault(_key(p.greedy.a), len(codes))
        for k, c in codes.items():
            x = as_number(k)
            out[r, c] = np.nan if x is None else x
    return out


class BankView:
    def __init__(self, bank, params: int | None = None, max_tokens: int | None = None):
        self.bank = bank
        self.params = int(params or bank.params)
        if self.params <= 0:
            raise CollmError(f"{bank.path}: the bank does not say its model's size; pass --model-params")
        A = bank.arrays()
        A["greedy_lp"] = np.array([p.greedy.lp for p in bank.problems])
        A["code_value"] = code_values(bank, A)
        self.A = A
        self.rows = [p.i for p in bank.problems]
        self.max_tokens = int(max_tokens or bank.header.get("sampling", {}).get("max_tokens")
                              or max(int(A["ntok"].max()), int(A["greedy_n"].max())) or DEFAULT_MAX_TOKENS)
        # None where the bank's model gave no prompt log-probs: a policy that reads them is refused
        self.prompt_signals = has_prompt_signals(bank.header)
        self.q_entropy = [p.q_entropy for p in bank.problems] if self.prompt_signals else None
        self.q_nll = [p.q_nll for p in bank.problems] if self.prompt_signals else None
        self.mean_sample_tokens = float(np.minimum(A["ntok"], self.max_tokens).mean())
        ds = str(bank.header.get("dataset", "")).lower()
        # every GSM8K answer is a whole number >= 0: other answers are surely wrong
        self.answer_form = "nonneg_int" if ds.startswith("gsm8k") else None
        # answered with what each sample's own Python prints (Bank.with_program_answers)
        self.program_answers = bank.task_name.endswith("+program")
        m = bank.model
        self.model = {"name": m.get("name"), "sha256": m.get("sha256"), "params": self.params}

    def __len__(self):
        return len(self.rows)

    @property
    def K(self) -> int:
        return self.A["ans"].shape[1]

    def subset(self, idx) -> "BankView":
        return BankView(self.bank.subset(list(idx)), self.params, self.max_tokens)

    def sampler(self, seed: int, budget: Budget | None = None) -> BankSampler:
        return BankSampler(self.A, self.rows, seed, self.params, self.max_tokens, budget, self.q_entropy, self.q_nll)

    def budget(self, samples: float | None = None, flops: float | None = None, extra_flops: float = 0.0) -> Budget:
        return make_budget(len(self), self.A["prompt_tokens"], self.params, self.max_tokens,
                           samples=samples, flops=flops, extra_flops=extra_flops)


def replay(policy, view: BankView, seed: int, budget: Budget | None = None) -> dict:
    """Run `policy` on the bank with draw-order seed `seed`: per-prompt
    correct, flops (estimators included), estimator flops and generations."""
    if getattr(policy, "target", {}).get("answers") == "program" and not view.program_answers:
        raise CollmError("this policy was calibrated on program answers (each sample's Python run); "
                         "replay it with --execute-code, on a bank built with --keep-text")
    sc = getattr(policy, "scorer", None)
    if getattr(sc, "needs_text", False) and "slips" not in view.A:
        raise CollmError("this policy's answer scorer reads the samples' texts (the arithmetic check), and this "
                         "bank has none; replay it on a bank built with `collm bank build --keep-text`")
    s = view.sampler(seed, budget)
    policy.run(s)
    correct = np.array([s.correct(j, policy.answer(s.draws[j])) for j in range(s.P)])
    return {"correct": correct, "flops": s.flops + s.est_flops, "estimator_flops": s.est_flops.copy(),
            "samples": s.gens.astype(float), "sampler": s}


def summary(runs: list[dict]) -> dict:
    """Means over replays (and prompts)."""
    return {"accuracy": float(np.mean([r["correct"].mean() for r in runs])),
            "samples": float(np.mean([r["samples"].mean() for r in runs])),
            "flops": float(np.mean([r["flops"].mean() for r in runs])),
            "estimator_flops": float(np.mean([r["estimator_flops"].mean() for r in runs]))}


def spend(policy, view: BankView, seeds, samples: float | None) -> float:
    """Average spend per prompt: generations when calibrating to a sample
    budget, FLOPs otherwise."""
    runs = [replay(policy, view, s) for s in seeds]
    return summary(runs)["samples" if samples is not None else "flops"]


def bisect_knob(set_knob, measure, target: float, lo: float, hi: float, increasing: bool, iters: int = 18) -> float:
    """Find the knob value whose measured spend is closest to target from below."""
    best = lo if increasing else hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        set_knob(mid)
        v = measure()
        if (v <= target) == increasing:
            lo = mid
        else:
            hi = mid
        best = lo if increasing else hi
    set_knob(best)
    return best
