"""What a bank says about a model, at no model cost: uniform majority-vote
curves, greedy accuracy, pass@k coverage, Snell et al.'s difficulty bins and
the oracle per-problem frontier.

Every replayed number is a mean over seeds: seed s draws the samples of the
problem at dataset row i in the order np.random.default_rng([s, i]).permutation(K)
(collm.bank.draws), the order the replay backend serves them in, so live
strategies on a ReplayBackend and these vectorised curves see the same draws.

Cost of a problem (FLOPs, as in collm.flops): 2 x params x (prompt_tokens +
generated tokens of the samples used); the prompt is prefilled once for all
of its samples. Greedy costs 2 x params x (prompt_tokens + greedy.n).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from collm.bank import draws, oracle
from collm.bank.format import Bank
from collm.errors import CollmError
from collm.flops import inference_flops

KS = (1, 2, 4, 8, 16, 32)
DEFAULT_SEEDS = 20
N_BOOT = 1000


def _seeds(seeds) -> list[int]:
    if seeds is None:
        seeds = range(DEFAULT_SEEDS)
    elif isinstance(seeds, int):
        seeds = range(seeds)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise CollmError("at least one seed is needed")
    return seeds


def _ks(bank: Bank, ks: Iterable[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise CollmError("sample counts must be >= 1")
    if ks[-1] > bank.k:
        raise CollmError(f"{bank.path}: asked for {ks[-1]} samples per problem; the bank holds {bank.k}")
    return ks


def rows(bank: Bank) -> list[int]:
    return [p.i for p in bank.problems]


def replay(bank: Bank, ks: Iterable[int], seeds=None) -> tuple[np.ndarray, np.ndarray]:
    """correct [S, P, len(ks)]: majority of the first k draws is right;
    tokens [S, P, len(ks)]: generated tokens of those k draws."""
    ks = _ks(bank, ks)
    A = bank.arrays()
    K = A["ok"].shape[1]
    cor, tok = [], []
    for s in _seeds(seeds):
        o = draws.orders(rows(bank), K, s)
        ans, ok, nt = draws.permute(A["ans"], o), draws.permute(A["ok"], o), draws.permute(A["ntok"], o)
        cor.append(draws.majority_correct(ans, ok, ks))
        tok.append(np.cumsum(nt, axis=1)[:, [k - 1 for k in ks]])
    return np.stack(cor), np.stack(tok)


def bootstrap_ci(per_problem: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over problems of the mean of per_problem [P]."""
    rng = np.random.default_rng(seed)
    P = len(per_problem)
    means = per_problem[rng.integers(0, P, size=(n_boot, P))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def params_of(bank: Bank, params: int | None = None) -> int:
    return int(params) if params else bank.params


def uniform_curve(bank: Bank, ks: Iterable[int] = KS, seeds=None, params: int | None = None) -> dict:
    """{k: {"accuracy", "lo", "hi", "samples": k, "flops", "tokens"}}: majority
    vote of k samples on every problem; accuracy is the mean over seeds, lo/hi
    a 95% bootstrap interval over problems; flops and tokens are averages
    per problem (flops is 0 when the model's size is unknown)."""
    ks = [k for k in _ks(bank, [k for k in ks if k <= bank.k] or ks)]
    cor, tok = replay(bank, ks, seeds)
    per_problem = cor.mean(axis=0)  # [P, len(ks)]
    prompt = bank.arrays()["prompt_tokens"]
    n = params_of(bank, params)
    out = {}
    for j, k in enumerate(ks):
        lo, hi = bootstrap_ci(per_problem[:, j])
        gen = float(tok[:, :, j].mean())
        out[k] = {"accuracy": float(per_problem[:, j].mean()), "lo": lo, "hi": hi, "samples": k,
                  "tokens": float(prompt.mean()) + gen, "flops": inference_flops(n, float(prompt.mean()) + gen)}
    return out


def greedy_accuracy(bank: Bank) -> float:
    return float(bank.arrays()["greedy_ok"].mean())


def greedy_point(bank: Bank, params: int | None = None) -> dict:
    """Greedy decoding as a point of the accuracy / cost plane."""
    A = bank.arrays()
    ok = A["greedy_ok"].astype(float)
    lo, hi = bootstrap_ci(ok)
    tokens = float((A["prompt_tokens"] + A["greedy_n"]).mean())
    return {"accuracy": float(ok.mean()), "lo": lo, "hi": hi, "samples": 1, "tokens": tokens,
            "flops": inference_flops(params_of(bank, params), tokens)}


def pass_at_k(bank: Bank, ks: Iterable[int] = KS) -> dict:
    """{k: coverage}: the chance that at least one of k samples is correct,
    by the unbiased estimator 1 - C(K-c, k) / C(K, k) (Chen et al. 2021),
    averaged over problems; exact, no seeds."""
    ks = _ks(bank, [k for k in ks if k <= bank.k] or ks)
    A = bank.arrays()
    K = A["ok"].shape[1]
    c = A["ok"].sum(axis=1)
    out = {}
    for k in ks:
        # prod_{j=0}^{k-1} (K-c-j)/(K-j) = C(K-c, k)/C(K, k), zero once K-c < k
        j = np.arange(k)
        fail = np.prod(np.clip((K - c[:, None] - j) / (K - j), 0, None), axis=1)
        out[k] = float((1 - fail).mean())
    return out


def pass1(bank: Bank) -> np.ndarray:
    """[P] per-problem pass@1: the mean correctness of all the bank's samples."""
    return bank.arrays()["ok"].mean(axis=1)


def difficulty_levels(bank: Bank, n_bins: int = 5) -> np.ndarray:
    """[P] level 1..n_bins per problem, Snell et al.'s difficulty bins: problems
    sorted by pass@1 (highest first, ties by dataset row) and cut into n_bins
    quantiles of equal size. Level 1 is the easiest, n_bins the hardest.
    Equal pass@1 may straddle a boundary (e.g. the many never-solved problems)."""
    if n_bins < 1 or n_bins > len(bank):
        raise CollmError(f"cannot cut {len(bank)} problems into {n_bins} bins")
    p1 = pass1(bank)
    order = np.lexsort((np.array(rows(bank)), -p1))
    level = np.empty(len(bank), int)
    for b, chunk in enumerate(np.array_split(order, n_bins), 1):
        level[chunk] = b
    return level


def difficulty_bins(bank: Bank, n_bins: int = 5, ks: Iterable[int] = KS, seeds=None) -> list[dict]:
    """Per difficulty level (1 = easiest): N, the pass@1 range, greedy accuracy
    and uniform majority-vote accuracy at each k."""
    ks = _ks(bank, [k for k in ks if k <= bank.k] or ks)
    level = difficulty_levels(bank, n_bins)
    cor, _ = replay(bank, ks, seeds)
    per_problem = cor.mean(axis=0)
    p1 = pass1(bank)
    g = bank.arrays()["greedy_ok"]
    out = []
    for b in range(1, n_bins + 1):
        m = level == b
        out.append({"bin": b, "n": int(m.sum()), "pass1_min": float(p1[m].min()), "pass1_max": float(p1[m].max()),
                    "pass1": float(p1[m].mean()), "greedy": float(g[m].mean()),
                    "uniform": {k: float(per_problem[m, j].mean()) for j, k in enumerate(ks)}})
    return out


def problem_curves(bank: Bank, seeds=None, params: int | None = None, exact: bool = True) -> dict:
    """Each problem's own expected curve over n = 1..K samples: "accuracy"
    [P, K] (majority of n right), "tokens" [P, K] (prompt included) and
    "flops" [P, K]. exact=True takes the exact expectation over every draw
    order (collm.bank.oracle.expected_majority); exact=False the mean over
    `seeds`, whose noise an oracle would exploit (few seeds overstate it)."""
    ks = list(range(1, bank.k + 1))
    prompt = bank.arrays()["prompt_tokens"][:, None]
    if exact:
        A = bank.arrays()
        acc = np.stack([oracle.expected_majority(A["ans"][p], A["ok"][p]) for p in range(len(bank))])
        tokens = prompt + A["ntok"].mean(axis=1, keepdims=True) * np.array(ks)[None, :]
    else:
        cor, tok = replay(bank, ks, seeds)
        acc, tokens = cor.mean(axis=0), prompt + tok.mean(axis=0)
    return {"n": np.array(ks), "accuracy": acc, "tokens": tokens,
            "flops": inference_flops(params_of(bank, params), tokens)}


def expected_uniform(bank: Bank, ks: Iterable[int] = KS, curves: dict | None = None) -> dict:
    """{k: accuracy}: majority of k, in exact expectation over all draw orders
    (what the seeded means of uniform_curve converge to)."""
    ks = _ks(bank, [k for k in ks if k <= bank.k] or ks)
    c = curves or problem_curves(bank)
    return {k: float(c["accuracy"][:, k - 1].mean()) for k in ks}


def oracle_frontier(bank: Bank, seeds=None, cost: str = "samples", min_samples: int = 1,
                    params: int | None = None, max_points: int | None = 64, curves: dict | None = None) -> list[dict]:
    """The oracle per-problem frontier: [{"samples", "accuracy", "flops",
    "tokens", "lambda"}, ...] by increasing cost. Each point is the best
    average accuracy any allocation of min_samples..K samples per problem
    reaches at that average cost, when each problem's expected majority-vote
    curve is known exactly (a Lagrangian sweep on `cost`: "samples" or
    "flops"; `seeds` is unused unless curves are passed in).

    It bounds every policy that fixes a problem's budget before seeing its
    samples. A policy that watches its draws (early stopping) sees what this
    oracle does not, so on a given draw it can in principle do better.
    """
    if cost not in ("samples", "flops"):
        raise CollmError(f"oracle cost must be 'samples' or 'flops' (got {cost!r})")
    K = bank.k
    if not 1 <= min_samples <= K:
        raise CollmError(f"min_samples must be in 1..{K}")
    c = curves or problem_curves(bank, seeds, params)
    sl = slice(min_samples - 1, K)
    acc = c["accuracy"][:, sl]
    n = np.broadcast_to(c["n"][sl].astype(float), acc.shape)
    tokens = c["tokens"][:, sl]
    if cost == "samples":
        res = oracle.sweep(acc, n, tokens)
        samples, tok = res["cost"], res["extra"]
    else:
        res = oracle.sweep(acc, tokens, n)
        samples, tok = res["extra"], res["cost"]
    keep = oracle.thin(res["cost"], max_points) if max_points else np.arange(len(res["cost"]))
    P = params_of(bank, params)
    return [{"samples": float(samples[j]), "accuracy": float(res["value"][j]), "tokens": float(tok[j]),
             "flops": inference_flops(P, float(tok[j])),
             "lambda": None if np.isinf(res["lambda"][j]) else float(res["lambda"][j])} for j in keep]


def cost_to_reach(points: list[dict], accuracy: float, key: str = "samples") -> float | None:
    """Least cost (samples or flops per problem) at which a curve of points,
    sorted by cost, reaches `accuracy` (linear between points); None if never."""
    prev = None
    for pt in points:
        if pt["accuracy"] >= accuracy:
            if prev is None or pt["accuracy"] == prev["accuracy"]:
                return float(pt[key])
            t = (accuracy - prev["accuracy"]) / (pt["accuracy"] - prev["accuracy"])
            return float(prev[key] + t * (pt[key] - prev[key]))
        prev = pt
    return None


def evaluate(bank: Bank, ks: Iterable[int] = KS, seeds=None, params: int | None = None, n_bins: int = 5) -> dict:
    """Everything `collm eval` reports, as one JSON-ready dict."""
    seeds = _seeds(seeds)
    curves = problem_curves(bank, params=params)
    uni = uniform_curve(bank, ks, seeds, params)
    return {
        "bank": bank.path,
        "model": bank.model,
        "problems": len(bank),
        "k": bank.k,
        "seeds": len(seeds),
        "params": params_of(bank, params),
        "greedy": greedy_accuracy(bank),
        "greedy_point": greedy_point(bank, params),
        "uniform": {str(k): v["accuracy"] for k, v in uni.items()},
        "uniform_curve": {str(k): v for k, v in uni.items()},
        "uniform_expected": {str(k): v for k, v in expected_uniform(bank, ks, curves).items()},
        "pass_at_k": {str(k): v for k, v in pass_at_k(bank, ks).items()},
        "difficulty_bins": [{**b, "uniform": {str(k): v for k, v in b["uniform"].items()}}
                            for b in difficulty_bins(bank, n_bins, ks, seeds)],
        "oracle": oracle_frontier(bank, seeds, "samples", params=params, curves=curves),
        "oracle_flops": oracle_frontier(bank, seeds, "flops", params=params, curves=curves),
    }
