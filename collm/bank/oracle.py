"""The oracle frontier: the best accuracy any per-problem allocation can reach
at each average cost, when every problem's own accuracy curve is known.

Each problem p offers options j (a number of samples) with a cost c[p, j]
and an expected accuracy v[p, j]. A Lagrangian sweep picks, for every price
lambda >= 0, the option maximising v - lambda * c on each problem; as lambda
falls from infinity to 0, the choices move along the upper concave hull of
each problem's (cost, accuracy) points. Sorting all hull segments of all
problems by slope (the lambda at which they are taken) and taking them in that
order gives every vertex of the frontier exactly, with no grid of lambdas to
tune. Every vertex is an allocation one can actually make (an integer number
of samples per problem).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # accuracy differences below this are rounding, not gains


def upper_hull(c: np.ndarray, v: np.ndarray) -> list[int]:
    """Indices of the upper concave hull of points (c, v), c increasing,
    from the first point while accuracy still rises."""
    hull: list[int] = []
    for j in range(len(c)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or below the line from a to j
            if (v[b] - v[a]) * (c[j] - c[a]) <= (v[j] - v[a]) * (c[b] - c[a]):
                hull.pop()
            else:
                break
        hull.append(j)
    # keep the rising part only: a segment that gains nothing (up to rounding) is never bought
    out = [hull[0]]
    for j in hull[1:]:
        if v[j] > v[out[-1]] + EPS:
            out.append(j)
        else:
            break
    return out


def sweep(value: np.ndarray, cost: np.ndarray, extra: np.ndarray | None = None) -> dict:
    """Frontier vertices for value/cost arrays [P, M] (options sorted by cost).

    Returns arrays over the vertices (first = every problem at its cheapest
    option): "cost" and "value" (means over problems), "lambda" (the price at
    which the vertex is reached) and "extra" (the mean of `extra`, a second cost
    carried along, e.g. FLOPs when sweeping on samples).
    """
    P, M = value.shape
    extra = np.zeros_like(cost, dtype=float) if extra is None else extra
    seg_p, seg_from, seg_to, seg_slope, seg_rank = [], [], [], [], []
    for p in range(P):
        h = upper_hull(cost[p], value[p])
        for r, (a, b) in enumerate(zip(h[:-1], h[1:])):
            seg_p.append(p)
            seg_from.append(a)
            seg_to.append(b)
            seg_slope.append((value[p, b] - value[p, a]) / (cost[p, b] - cost[p, a]))
            seg_rank.append(r)
    seg_p = np.array(seg_p, int)
    seg_from, seg_to = np.array(seg_from, int), np.array(seg_to, int)
    slope = np.array(seg_slope, float)
    order = np.lexsort((seg_rank, -slope))  # steepest first; a problem's own segments in order
    sp, sf, st = seg_p[order], seg_from[order], seg_to[order]
    dv = value[sp, st] - value[sp, sf]
    dc = cost[sp, st] - cost[sp, sf]
    de = extra[sp, st] - extra[sp, sf]
    base_v, base_c, base_e = value[:, 0].sum(), cost[:, 0].sum(), extra[:, 0].sum()
    return {
        "value": np.concatenate([[base_v], base_v + np.cumsum(dv)]) / P,
        "cost": np.concatenate([[base_c], base_c + np.cumsum(dc)]) / P,
        "extra": np.concatenate([[base_e], base_e + np.cumsum(de)]) / P,
        "lambda": np.concatenate([[np.inf], slope[order]]),
    }


def thin(cost: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most max_points vertices, spread evenly in cost, always
    keeping the first and the last (each kept point is a real allocation)."""
    if len(cost) <= max_points:
        return np.arange(len(cost))
    grid = np.linspace(cost[0], cost[-1], max_points)
    idx = np.searchsorted(cost, grid, side="right") - 1
    return np.unique(np.clip(np.concatenate([[0], idx, [len(cost) - 1]]), 0, len(cost) - 1))


def expected_majority(ans: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """[K] exact expected accuracy of the majority of n = 1..K samples drawn
    without replacement, in a uniformly random order, from one problem's K
    bank samples (ans: answer codes, -1 = none; ok: correct).

    Draws are counted, not simulated: for a right answer drawn t times, the
    other answers must each be drawn at most t times; a tie at t goes to the
    answer drawn first, which by symmetry is each tied answer with equal
    chance. A dynamic programme over the other answers counts the ways
    (draws s from them, j of them tied at t); the no-answer samples fill the
    rest of the n draws.
    """
    from math import comb

    K = len(ans)
    codes, counts = np.unique(ans[ans >= 0], return_counts=True)
    none = int((ans < 0).sum())
    right = {int(c) for c in np.unique(ans[(ans >= 0) & ok])}
    out = np.zeros(K + 1)
    none_ways = np.array([comb(none, r) for r in range(K + 1)], float)
    for c, m in zip(codes, counts):
        if int(c) not in right:
            continue
        others = [int(x) for cc, x in zip(codes, counts) if cc != c]
        J = len(others) + 1
        for t in range(1, int(m) + 1):
            W = np.zeros((K + 1, J))
            W[0, 0] = 1.0
            for mc in others:
                new = np.zeros_like(W)
                for x in range(0, min(mc, t) + 1):
                    w = comb(mc, x)
                    if x == t:
                        new[x:, 1:] += w * W[:K + 1 - x, :-1]
                    else:
                        new[x:, :] += w * W[:K + 1 - x, :]
                W = new
            ways_s = (W / np.arange(1, J + 1)).sum(axis=1)  # [s], ties shared
            total = np.convolve(ways_s, none_ways)[: K + 1]  # [n - t]
            out[t:] += comb(int(m), t) * total[: K + 1 - t]
    n = np.arange(K + 1)
    return (out / np.array([comb(K, int(x)) for x in n], float))[1:]
