"""Replay draws: which samples a problem gets, in which order, and the
majority vote of its first k draws, vectorised over a whole bank.

A seed's draw order for the problem at dataset row i is
np.random.default_rng([seed, i]).permutation(K): the same for every policy,
so policies are compared on the same draws. Majority ties go to the answer
drawn first (as collm.vote does live); no answer never votes; a problem
whose draws hold no answer counts as wrong.
"""

from __future__ import annotations

import numpy as np


def orders(rows, k: int, seed: int) -> np.ndarray:
    """[P, k] draw order for the problems at dataset rows `rows`."""
    return np.stack([np.random.default_rng([seed, int(i)]).permutation(k) for i in rows])


def permute(x: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.take_along_axis(x, order, axis=1)


def code_ok(ans: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """[P, C] whether answer code c is correct (C = max code + 1, at least 1)."""
    C = max(int(ans.max()) + 1, 1)
    out = np.zeros((ans.shape[0], C), bool)
    r, c = np.nonzero(ans >= 0)
    out[r, ans[r, c]] = ok[r, c]
    return out


def vote_state(ans: np.ndarray, ks) -> tuple[np.ndarray, np.ndarray]:
    """For each prefix length k in ks: counts [P, len(ks), C] of each answer
    code among the first k draws, and first-draw position [P, len(ks), C]
    (k if not drawn yet). `ans` is already in draw order."""
    P, K = ans.shape
    C = max(int(ans.max()) + 1, 1)
    onehot = np.zeros((P, K, C), np.int32)
    r, c = np.nonzero(ans >= 0)
    onehot[r, c, ans[r, c]] = 1
    cum = np.cumsum(onehot, axis=1)
    seen = cum > 0
    first = np.where(seen.any(axis=1), seen.argmax(axis=1), K)  # [P, C]
    ks = list(ks)
    counts = np.stack([cum[:, k - 1, :] for k in ks], axis=1)
    firsts = np.stack([np.where(counts[:, j, :] > 0, first, k) for j, k in enumerate(ks)], axis=1)
    return counts, firsts


def majority_codes(counts: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """Winning code per state (-1 when nothing voted); ties: drawn first."""
    K1 = firsts.max() + 1
    score = counts.astype(np.int64) * (K1 + 1) - firsts
    win = score.argmax(axis=-1)
    return np.where(counts.max(axis=-1) > 0, win, -1)


def majority_correct(ans: np.ndarray, ok: np.ndarray, ks) -> np.ndarray:
    """[P, len(ks)] whether the majority of the first k draws is correct.
    ans/ok are in draw order."""
    counts, firsts = vote_state(ans, ks)
    win = majority_codes(counts, firsts)
    cok = code_ok(ans, ok)
    got = np.take_along_axis(cok, np.maximum(win, 0), axis=1)
    return got & (win >= 0)
