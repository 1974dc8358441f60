"""Cheap difficulty signals, each reporting its own cost in FLOPs.

Every signal reads a sampler (collm.samplers): a bank replay or a
live backend, so that any policy built on them can be replayed.

    q_tokens        question length in tokens: free (tokenisation)
    prefix_entropy  mean next-token entropy over the first k question tokens;
                    charged a full forward pass over those k tokens (an upper
                    bound: when the prefill is then shared with generation,
                    only the LM head over those positions is extra)
    prompt_nll      mean negative log-likelihood of the question's tokens, same cost
    greedy_nll      mean NLL per token of the greedy decode: costs the decode
                    itself, which every adaptive policy runs anyway and counts
                    as a generation (it votes)
    answer_entropy, leader_margin   agreement among the first m draws: cost m
                    generations, counted as generations

values(sampler, name) -> (values [P], flops [P]); the caller charges the flops.
"""

from __future__ import annotations

import math

import numpy as np

from collm.errors import CollmError
from collm.samplers import tally

PROMPT_SIGNALS = ("q_tokens", "prefix_entropy", "prompt_nll")
DRAW_SIGNALS = ("greedy_nll", "answer_entropy", "leader_margin")
SIGNALS = PROMPT_SIGNALS + DRAW_SIGNALS


def values(sampler, name: str, k: int = 32, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One signal for every prompt of the sampler, and what it costs per prompt
    beyond the generations already made (the draw signals read draws made)."""
    if name in PROMPT_SIGNALS:
        return sampler.signal(name, k)
    if name not in DRAW_SIGNALS:
        raise CollmError(f"unknown signal {name!r}; known: {', '.join(SIGNALS)}")
    out = np.zeros(sampler.P)
    for j, ds in enumerate(sampler.draws):
        if name == "greedy_nll":
            g = [d for d in ds if d.greedy]
            out[j] = -g[0].lp / max(g[0].tokens, 1) if g else 0.0
            continue
        ds = ds[:m] if m else ds
        t = tally(ds)
        votes = [v[0] for v in t.values()]
        n = sum(votes)
        counts = sorted(votes, reverse=True) + [0, 0]
        if name == "answer_entropy":
            out[j] = -sum(c / n * math.log(c / n) for c in votes) if n else math.log(max(len(ds), 1) + 1)
        else:
            out[j] = (counts[0] - counts[1]) / max(len(ds), 1)
    return out, np.zeros(sampler.P)
