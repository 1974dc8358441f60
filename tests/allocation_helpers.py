"""Random small banks for the allocation tests."""

from __future__ import annotations

import numpy as np

from collm.bank.format import Bank, BankProblem, BankSample

MAX_TOKENS = 50


def random_bank(seed: int, P: int = 6, K: int = 6, n_answers: int = 3, params: int = 1000,
                at_max: float = 0.0) -> Bank:
    """P problems of K samples with random answers and lengths. `at_max`: the
    share of samples (greedy decodes included) that run to exactly MAX_TOKENS
    and are cut there, without an answer, as a bank built by collm records
    them; there a draw's worst case is its real cost."""
    rng = np.random.default_rng(seed)
    probs = []
    for i in range(P):
        gold = int(rng.integers(0, n_answers))

        def s():
            a = int(rng.integers(-1, n_answers))
            n = int(rng.integers(1, MAX_TOKENS + 1))
            if at_max and rng.random() < at_max:
                return BankSample(None, False, MAX_TOKENS, float(-rng.random() * MAX_TOKENS), "length")
            return BankSample(None if a < 0 else float(a), a == gold, n, float(-rng.random() * n))

        q = int(rng.integers(3, 40))
        probs.append(BankProblem(i, float(gold), q + int(rng.integers(5, 20)), q, list(rng.random(q) * 3),
                                 list(rng.random(q) * 5), s(), [s() for _ in range(K)]))
    return Bank(f"<random {seed}>", probs, {"model": {"name": "toy", "params": params},
                                            "sampling": {"max_tokens": MAX_TOKENS}})
