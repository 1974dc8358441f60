"""The token picker against a plain reference (the full softmax, the full sort):
the same tokens from the same streams, log-probs of the full softmax, on peaked
rows (the near-set path) and flat ones (the whole-row path)."""

import numpy as np
import pytest

from collm.backends.picking import NEAR, pick

V = 20_000


def reference(logits, temperature, top_p, rngs, top_k):
    lse = np.log(np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    tok = []
    for row, g in zip(logits, rngs):
        if temperature == 0:
            tok.append(int(row.argmax()))
            continue
        order = np.lexsort((np.arange(len(row)), -row))  # most likely first, ties by id
        if 0 < top_k < len(row):
            order = order[:top_k]
        elif top_p >= 1.0:
            order = np.arange(len(row))  # no truncation: id order
        z = np.exp((row[order] - row.max()) / temperature)
        c = np.cumsum(z, dtype=np.float64)
        keep = len(z) if top_p >= 1.0 else min(int(np.searchsorted(c, top_p * c[-1], side="left")) + 1, len(z))
        j = int(np.searchsorted(c[:keep], g.random() * c[keep - 1], side="right"))
        tok.append(int(order[min(j, keep - 1)]))
    tok = np.array(tok)
    return tok, logits[np.arange(len(tok)), tok] - lse


def rows(kind, n=6, seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, V)).astype(np.float32) * (1.0 if kind == "flat" else 3.0)
    if kind == "peaked":  # as a language model's: a few candidates far above the rest
        for r in x:
            r[g.choice(V, 40, replace=False)] += g.uniform(25, 45, 40).astype(np.float32)
        x[0, :7] = x[0].max()  # ties at the top: the lower id goes first
    return x


@pytest.mark.parametrize("kind", ["peaked", "flat"])
@pytest.mark.parametrize("t,top_p,top_k", [(0.0, 1.0, 0), (0.8, 1.0, 50), (0.8, 0.9, 50), (0.8, 1.0, 0),
                                           (1.0, 0.7, 0), (1.5, 1.0, 0), (0.8, 1.0, 5000)])
def test_same_tokens_and_log_probs_as_the_reference(kind, t, top_p, top_k):
    x = rows(kind)
    for step in range(5):
        a = pick(x, t, top_p, [np.random.default_rng([step, i]) for i in range(len(x))], top_k)
        b = reference(x, t, top_p, [np.random.default_rng([step, i]) for i in range(len(x))], top_k)
        assert a[0].tolist() == b[0].tolist()
        np.testing.assert_allclose(a[1], b[1], atol=2e-5)


def test_far_tokens_are_left_out_only_when_they_cannot_matter():
    x = rows("peaked", n=2)
    mx = x.max(1, keepdims=True)
    assert ((x >= mx - NEAR).sum(1) < V // 4).all()  # the near-set path is the one taken
    tok, lp = pick(x, 0.8, 1.0, [np.random.default_rng(i) for i in range(2)], 0)
    assert (x[np.arange(2), tok] >= mx[:, 0] - NEAR).all()
    assert (lp <= 0).all()


def test_a_row_with_fewer_near_tokens_than_top_k_searches_the_whole_row():
    x = np.zeros((1, V), dtype=np.float32)
    x[0, 123] = 100.0  # one token near the top: the other 49 of the top 50 are far below it
    x[0, 7] = -1.0
    tok, lp = pick(x, 50.0, 1.0, [np.random.default_rng(0)], 3)
    assert tok[0] in (123, 0, 1)  # the top 3: 123, then the ties at 0 by id (0, 1); never 7
