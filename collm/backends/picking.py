"""Picking a token from a row of logits, in numpy: greedy (argmax) or a draw
at a temperature, among the top_k most likely tokens and the top_p nucleus,
from the row's own random stream; and every pick's log-prob under the raw
model (log-softmax of the unprocessed logits), which the verifiers and the
allocation policies read.

A row is a whole vocabulary (152k logits for Qwen2.5) and exp is the costly
part (about 8 adds' worth in numpy), so the work is done on each row's *near
set*: the logits within NEAR of the row's largest. A token further down has
weight below e^-NEAR = 9e-14 of the top one's, so all of them together move
the log-sum-exp by less than vocab x 9e-14 (1.4e-8 for 152k tokens), below
float32's resolution: the log-probs are those of the full softmax. The near
set also holds the row's top_k tokens whenever it has at least k of them
(else the whole row is searched). The k tokens are put in one canonical order
(most likely first, ties by token id), so a draw depends only on the logits
and the stream, never on how numpy partitions. A step where most logits are
near (a flat distribution) falls back to whole-row passes.
"""

from __future__ import annotations

import numpy as np

NEAR = 30.0  # logits further than this below a row's largest are left out of its sums


def pick(logits: np.ndarray, temperature: float, top_p: float, rngs, top_k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One token per row (argmax at temperature 0) and its log-prob under the raw
    model; row k draws from its own stream rngs[k]. top_k > 0 keeps each row's
    k most likely tokens before top_p."""
    logits = np.asarray(logits, dtype=np.float32)
    rows, vocab = logits.shape
    mx = logits.max(1)
    near = logits >= (mx - NEAR)[:, None]
    if np.count_nonzero(near) > rows * vocab // 4:  # flat rows: whole-row passes are cheaper
        lse = mx + np.log(np.exp(logits - mx[:, None]).sum(1))
        sets = [(np.arange(vocab), row) for row in logits]
    else:
        r, c = np.nonzero(near)
        vals = logits[r, c]
        lse = mx + np.log(np.bincount(r, weights=np.exp(vals - mx[r]), minlength=rows))
        cuts = np.searchsorted(r, np.arange(rows + 1))
        sets = [(c[a:b], vals[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    if temperature == 0:
        tok = logits.argmax(1)
    else:
        tok = np.empty(rows, dtype=np.int64)
        for i, (ids, v) in enumerate(sets):
            # the near set holds every token a draw can reach, unless top_k wants more tokens than it has,
            # or no top_k and a temperature above 1 lifts the far tokens' weights
            if (top_k > 0 and len(ids) < min(top_k, vocab)) or (not 0 < top_k < vocab and temperature > 1):
                ids, v = np.arange(vocab), logits[i]
            if 0 < top_k < len(ids) or top_p < 1.0:
                ids, v = _most_likely(ids, v, top_k if 0 < top_k < len(ids) else len(ids))
            tok[i] = ids[draw(np.exp((v - mx[i]) / temperature), top_p, rngs[i])]
    return tok, logits[np.arange(rows), tok] - lse


def _most_likely(ids: np.ndarray, v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of v (and their ids), largest first, ties by the lower id."""
    if len(v) > 4 * k:
        kth = np.partition(v, len(v) - k)[len(v) - k]  # the k-th largest value
        keep = v >= kth
        ids, v = ids[keep], v[keep]
    order = np.lexsort((ids, -v))[:k]
    return ids[order], v[order]


def draw(z: np.ndarray, top_p: float, rng) -> int:
    """A draw (an index into z) from unnormalised weights z, by inverse CDF with one
    uniform number of the stream; with top_p < 1 (z then most likely first), from
    the smallest set of most likely tokens whose mass reaches top_p."""
    c = np.cumsum(z, dtype=np.float64)
    keep = len(z) if top_p >= 1.0 else min(int(np.searchsorted(c, top_p * c[-1], side="left")) + 1, len(z))
    j = int(np.searchsorted(c[:keep], rng.random() * c[keep - 1], side="right"))
    return min(j, keep - 1)
