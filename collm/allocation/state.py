"""A prompt's vote state: what its draws so far say, as an answer and as a
few numbers a policy can act on. The votes themselves (tally, leader) are
collm.samplers.base's.

The features (all cheap, all available in a bank replay and live):
    share1, share2   leader's and runner-up's share of the draws
    distinct         distinct answers / draws
    greedy_lead      the greedy answer is the leader
    novote           share of draws with no vote (no answer, or cut)
    certainty_gap    mean log-prob per token of the leader's draws minus the
                     others' (self-certainty: a confident leader is more often right)
    length           mean generated tokens / max_tokens
    q_len            log question tokens (the signal with most to say on its own)
    implausible      share of draws whose answer has the wrong form
    score1, score2   the group scorer's belief in the best and second answer
and a few products of these.

Group features (one row per answer, for the group scorer) add, where the
draws' texts are known (live, or a bank built with --keep-text), what the
arithmetic check (collm.verifiers.arithmetic) found: the share of the
prompt's draws that give this answer with no arithmetic slip, and the share
of the answer's own draws with one (TEXT_FEATURES; 0 when no text is known).
"""

from __future__ import annotations

import math

import numpy as np

from collm.samplers.base import leader, plausible, tally  # noqa: F401  (tally: re-exported for policies)

FEATURES = ("bias", "share1", "share2", "distinct", "greedy_lead", "novote", "certainty_gap", "length", "q_len",
            "share1^2", "share1*greedy_lead", "share2^2", "share1*distinct", "implausible", "score1", "score2")
GROUP_FEATURES = ("bias", "share", "share^2", "mean_lpt", "max_lpt", "greedy", "length", "plausible", "is_leader", "1/m",
                  "rel_lpt_sum", "lead", "log_votes", "rel_lpt", "log_value", "rel_z_sum", "rel_z", "zero", "huge")
TEXT_FEATURES = ("clean_share", "slip_frac")
ALL_GROUP_FEATURES = GROUP_FEATURES + TEXT_FEATURES


def groups(draws, form: str | None = None) -> tuple[list, np.ndarray]:
    """Each voting answer and its ALL_GROUP_FEATURES row.

    Besides the vote (share, lead over the next answer, log count) and the
    model's certainty (mean and best log-prob per token of the answer's draws),
    each group's certainty is also measured against this prompt's own draws
    (mean log-prob per token minus the prompt's mean, summed and in standard
    deviations: per-sample evidence, a weighted vote), and the answer's value
    gives cheap priors (log size; 0 and numbers past 10^4 are rarely right)."""
    m = max(len(draws), 1)
    lpts = [d.lp / max(d.tokens, 1) for d in draws if d.key is not None and not d.cut]
    mu = float(np.mean(lpts)) if lpts else 0.0
    sd = float(np.std(lpts)) + 0.05 if len(lpts) > 1 else 0.3
    g: dict = {}
    for d in draws:
        if d.key is None or d.cut:
            continue
        e = g.get(d.key)
        if e is None:  # votes, sum lpt, max lpt, tokens, greedy, form, value, clean draws, draws with a slip
            e = g[d.key] = [0, 0.0, -1e9, 0, False, plausible(d, form), d.value, 0, 0]
        lpt = d.lp / max(d.tokens, 1)
        e[0] += 1
        e[1] += lpt
        e[2] = max(e[2], lpt)
        e[3] += d.tokens
        e[4] = e[4] or d.greedy
        if d.slips is not None:
            e[7 if d.slips == 0 else 8] += 1
    if not g:
        return [], np.zeros((0, len(ALL_GROUP_FEATURES)))
    cs = sorted((e[0] for e in g.values()), reverse=True) + [0]
    top = cs[0]
    rows = []
    for c, s, mx, t, gr, ok, v, clean, slipped in g.values():
        rel = s - c * mu  # summed certainty relative to the prompt's mean
        nxt = cs[1] if c == top else top
        rows.append([1.0, c / m, (c / m) ** 2, s / c, mx, float(gr), t / c / 400.0, float(ok), float(c == top), 1.0 / m,
                     rel, (c - nxt) / m, math.log(c), s / c - mu, math.log1p(abs(v)) if v is not None else 0.0,
                     rel / sd, rel / sd / c, float(v == 0), float(v is not None and abs(v) > 1e4),
                     clean / m, slipped / c])
    return list(g), np.array(rows)


def features(draws, q_tokens: int, max_tokens: int, vote_cut: bool = False, form: str | None = None,
             scorer=None) -> tuple[object, np.ndarray]:
    """(answer, feature vector in FEATURES order) of one prompt's draws. With a
    group scorer, the answer is the scorer's best group."""
    m = max(len(draws), 1)
    lead, t = leader(draws, vote_cut, form)
    counts = sorted((v[0] for v in t.values()), reverse=True) + [0, 0]
    voted = sum(v[0] for v in t.values())
    g = next((d for d in draws if d.greedy), None)
    greedy_lead = float(g is not None and lead is not None and g.key == lead and not (g.cut and not vote_cut))
    gap = 0.0
    if lead is not None and voted > t[lead][0]:
        lead_lpt = t[lead][1] / t[lead][0]
        other = (sum(v[1] for v in t.values()) - t[lead][1]) / (voted - t[lead][0])
        gap = lead_lpt - other
    length = sum(d.tokens for d in draws) / len(draws) / max_tokens if draws else 1.0
    implausible = sum(1 for d in draws if d.key is not None and not plausible(d, form)) / m
    s1 = s2 = 0.0
    if scorer is not None:
        keys, sc = scorer.scores(draws, form)
        if len(keys):
            order = np.argsort(-sc, kind="stable")
            lead, s1 = keys[order[0]], float(sc[order[0]])
            s2 = float(sc[order[1]]) if len(keys) > 1 else 0.0
    a, b, dist = counts[0] / m, counts[1] / m, len(t) / m
    x = np.array([1.0, a, b, dist, greedy_lead, 1 - voted / m, float(np.clip(gap, -1, 1)), length,
                  math.log(max(int(q_tokens), 1)) / 5, a * a, a * greedy_lead, b * b, a * dist, implausible, s1, s2])
    return lead, x
