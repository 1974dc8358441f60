"""Picking a token from a row of logits, in numpy: greedy (argmax) or a draw
at a temperature, among the top_k most likely tokens and the top_p nucleus,
from the row's own random stream; and every pick's log-prob under the raw
model (log-softmax of the unprocessed logits), which the verifiers and the
allocation policies read."""

from __future__ import annotations

import numpy as np


def pick(logits: np.ndarray, temperature: float, top_p: float, rngs, top_k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One token per row (argmax at temperature 0) and its log-prob under the raw
    model; row k draws from its own stream rngs[k]. top_k > 0 keeps each row's
    k most likely tokens before top_p."""
    mx = logits.max(1, keepdims=True)
    z = np.exp(logits - mx)
    lse = mx[:, 0] + np.log(z.sum(1))
    if temperature == 0:
        tok = logits.argmax(1)
    elif 0 < top_k < logits.shape[1]:  # draw among each row's k most likely tokens only
        head = np.argpartition(logits, -int(top_k), axis=1)[:, -int(top_k):]
        w = np.exp((np.take_along_axis(logits, head, 1) - mx) / temperature)
        tok = np.take_along_axis(head, np.array([[draw(row, top_p, g)] for row, g in zip(w, rngs)]), 1)[:, 0]
    else:
        if temperature != 1.0:
            z = np.exp((logits - mx) / temperature)
        tok = np.array([draw(row, top_p, g) for row, g in zip(z, rngs)])
    return tok, logits[np.arange(len(tok)), tok] - lse


def draw(z: np.ndarray, top_p: float, rng) -> int:
    """A draw from unnormalised weights z; with top_p < 1, from the smallest set
    of most likely tokens whose mass reaches top_p (found by a growing partial sort)."""
    if top_p >= 1.0:
        c = np.cumsum(z, dtype=np.float64)
        return min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(z) - 1)
    total = float(z.sum())
    k = 64
    while True:
        k = min(k, len(z))
        head = np.argpartition(-z, k - 1)[:k] if k < len(z) else np.arange(len(z))
        head = head[np.argsort(-z[head], kind="stable")]
        c = np.cumsum(z[head], dtype=np.float64)
        if c[-1] >= top_p * total or k == len(z):
            keep = min(int(np.searchsorted(c, top_p * total, side="left")) + 1, k)
            j = int(np.searchsorted(c[:keep], rng.random() * c[keep - 1], side="right"))
            return int(head[min(j, keep - 1)])
        k *= 4
