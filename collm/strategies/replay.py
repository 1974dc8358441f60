"""The vote-and-verify strategies replayed on a sample bank, at no model cost.

Majority vote, self-certainty-weighted vote and best-of-N by self-certainty
only differ in how a prompt's samples are combined, so a bank of samples
answers, for every problem and budget k, whether each would have been right
(averaged over seeded draw orders, the same orders every policy sees).
Samples cut at the bank's max_tokens never vote (as live). Searches and
revisions (beam, dvts, lookahead, revisions) need new generations and only
run live.

    acc = method_accuracy(bank, ks=[1, 4, 16], seeds=range(20))   # {"majority": [P, 3], ...}
    report = strategy_policy_report(bank, "policy.strategies.json")  # what `collm eval --policy` prints
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from collm.allocation.replay import BankView
from collm.bank import draws
from collm.bank.evaluate import difficulty_levels, pass1, uniform_curve
from collm.bank.evaluate import rows as bank_rows
from collm.difficulty.bins import DifficultyBins, bank_values
from collm.errors import CollmError
from collm.strategies.select import StrategyPolicy, fit_strategy_policy

# strategy name -> replay method, for the settings a replay can honour
REPLAYABLE = {"majority": "majority", "weighted": "weighted", "best": "best"}
SELF_CERTAINTY = ("self-certainty", "sc", None)


def weighted_correct(ans, ok, w, ks):
    """[P, len(ks)]: the verifier-weighted vote of the first k draws is right
    (sum of scores per answer; ties: drawn first; no answer never votes)."""
    P, K = ans.shape
    C = max(int(ans.max()) + 1, 1)
    onehot = np.zeros((P, K, C))
    r, c = np.nonzero(ans >= 0)
    onehot[r, c, ans[r, c]] = w[r, c]
    present = np.zeros((P, K, C), bool)
    present[r, c, ans[r, c]] = True
    cum, seen = np.cumsum(onehot, axis=1), np.cumsum(present, axis=1) > 0
    first = np.where(seen.any(axis=1), seen.argmax(axis=1), K)
    cok = draws.code_ok(ans, ok)
    out = np.zeros((P, len(ks)), bool)
    for j, k in enumerate(ks):
        s, here = cum[:, k - 1, :], seen[:, k - 1, :]
        top = np.where(here, s, -np.inf).max(axis=1, keepdims=True)
        cand = here & (s >= top - 1e-12)
        win = np.where(cand, first, K + 1).argmin(axis=1)
        out[:, j] = here.any(axis=1) & cok[np.arange(P), win]
    return out


def best_correct(ans, ok, w, ks):
    """[P, len(ks)]: the top-scoring answered draw among the first k is right."""
    s = np.where(ans >= 0, w, -np.inf)
    out = np.zeros((ans.shape[0], len(ks)), bool)
    for j, k in enumerate(ks):
        i = s[:, :k].argmax(axis=1)
        out[:, j] = np.isfinite(s[np.arange(len(s)), i]) & ok[np.arange(len(s)), i]
    return out


def cut_length(bank) -> int:
    A = bank.arrays()
    return int(bank.header.get("sampling", {}).get("max_tokens") or A["ntok"].max())


def method_accuracy(bank, ks, seeds, scores: dict | None = None) -> dict:
    """{"majority", "weighted", "best" (self-certainty), and "weighted-NAME" /
    "best-NAME" for each extra [P, K] score array in `scores`}: [P, len(ks)]
    mean correctness over the seeded draw orders."""
    A = bank.arrays()
    P, K = A["ok"].shape
    answered = (A["ans"] >= 0) & (A["ntok"] < cut_length(bank))
    ans0 = np.where(answered, A["ans"], -1)
    ws = {"": np.exp(A["lp"] / np.maximum(A["ntok"], 1)), **{f"-{k}": v for k, v in (scores or {}).items()}}
    acc = {"majority": np.zeros((P, len(ks)))}
    for suf in ws:
        acc[f"weighted{suf}"] = np.zeros((P, len(ks)))
        acc[f"best{suf}"] = np.zeros((P, len(ks)))
    seeds = list(seeds)
    for s in seeds:
        o = draws.orders(bank_rows(bank), K, s)
        ans, ok = draws.permute(ans0, o), draws.permute(A["ok"], o)
        acc["majority"] += draws.majority_correct(ans, ok, ks)
        for suf, w in ws.items():
            w = draws.permute(w, o)
            acc[f"weighted{suf}"] += weighted_correct(ans, ok, w, ks)
            acc[f"best{suf}"] += best_correct(ans, ok, w, ks)
    return {m: a / len(seeds) for m, a in acc.items()}


def replay_method(entry: dict) -> str:
    """The replay method for a policy entry, or a clear error."""
    name, settings = entry["strategy"], entry.get("settings") or {}
    if name not in REPLAYABLE:
        raise CollmError(f"strategy {name!r} generates new text (search or revisions) and cannot be replayed "
                         f"from a bank; run it live (bench/strategies.py live)")
    if name != "majority" and settings.get("verifier") not in SELF_CERTAINTY:
        raise CollmError(f"only the self-certainty verifier can be replayed from a bank, not {settings.get('verifier')!r}")
    return REPLAYABLE[name]


def strategy_policy_report(bank, path, seeds=range(20), params: int | None = None) -> dict:
    """A strategy policy replayed on a bank: at each of its budgets, each problem
    gets the strategy chosen for its bin (predicted from the question when
    the policy carries a bin predictor, else the bank's oracle bins), against
    majority and weighted voting on the same draws. Evaluated on the bank it
    was fitted on, these figures are in-sample: the policy's own "cv" entry
    holds its two-fold held-out accuracy."""
    view = BankView(bank, params)
    pol = StrategyPolicy.from_file(path, model=view.model if (view.model.get("sha256") or view.model.get("name")) else None)
    ks = [k for k in pol.budgets if k <= bank.k]
    if not ks:
        raise CollmError(f"{path}: every budget of the policy ({pol.budgets}) is above the bank's {bank.k} samples")
    if pol.bins_model is not None:
        vals, est = bank_values(view, pol.bins_model.signals, pol.bins_model.k)
        level, how = pol.bins_model.predict(vals), "predicted from the question"
    else:
        level, est, how = difficulty_levels(bank, max(pol.bins)), np.zeros(len(bank)), "oracle (pass@1 of the bank)"
    seeds = list(seeds)
    acc = method_accuracy(bank, ks, seeds)
    curve = uniform_curve(bank, ks, seeds, view.params)
    rows = []
    for j, k in enumerate(ks):
        entries = [pol.entry(int(b), k) for b in level]
        chosen = np.array([acc[replay_method(e)][i, j] for i, e in enumerate(entries)])
        f = curve[k]["flops"] + float(est.mean())
        rows.append({"budget": k, "accuracy": float(chosen.mean()), "majority": float(acc["majority"][:, j].mean()),
                     "weighted": float(acc["weighted"][:, j].mean()), "flops": f,
                     "estimator_share": float(est.mean()) / f if f else 0.0,
                     "choices": dict(sorted(Counter(e["strategy"] for e in entries).items()))})
    p1 = pass1(bank)
    corr = None
    if pol.bins_model is not None and len(bank) > 2:
        from scipy.stats import spearmanr

        corr = float(spearmanr(pol.bins_model.difficulty(vals), -p1).statistic)
    return {"kind": "strategy", "bins": how, "problems": len(bank), "seeds": len(seeds), "budgets": rows,
            "difficulty_spearman": corr, "cv": pol.cv, "note": "in-sample when the bank is the one the policy was fitted on; "
            "cv holds the held-out figures"}


def fit_bank_strategy_policy(bank, ks=None, seeds=range(20), seed: int = 0, params: int | None = None) -> StrategyPolicy:
    """The per-bin strategy policy of a bank: for every problem and budget, how
    majority, self-certainty-weighted and best-by-self-certainty voting do on
    the bank's draws; difficulty bins predicted from the question (prefix
    entropy, prompt NLL, length: collm.difficulty.bins), cross-fitted on the
    same two folds the per-bin choice is cross-validated on, so no fold sees
    its own labels; the choice per (bin, budget) by two-fold cross-validation.
    What `collm calibrate --strategies` writes."""
    view = BankView(bank, params)
    P = len(bank)
    ks = [k for k in (ks or (1, 2, 4, 8, 16, 32)) if k <= bank.k]
    if not ks:
        raise CollmError(f"{bank.path}: every budget is above the bank's {bank.k} samples")
    if P < 10:
        raise CollmError(f"{bank.path}: {P} problems are too few to cut into 5 difficulty bins and two folds")
    acc = method_accuracy(bank, ks, seeds)
    folds = np.random.default_rng(seed).permutation(P) % 2
    vals, est = bank_values(view)
    p1 = pass1(bank)
    pred, diff = np.zeros(P, int), np.zeros(P)
    for f in range(2):
        fit = folds != f
        bins = DifficultyBins().fit({k: v[fit] for k, v in vals.items()}, p1[fit])
        held = {k: v[~fit] for k, v in vals.items()}
        pred[~fit], diff[~fit] = bins.predict(held), bins.difficulty(held)
    rows = [int(p.i) for p in bank.problems]
    methods = {"majority": ("majority", {}), "weighted": ("weighted", {"verifier": "self-certainty"}),
               "best": ("best", {"verifier": "self-certainty"})}
    records = [{"problem": rows[i], "bin": int(pred[i]), "budget": k, "strategy": name, "settings": settings,
                "correct": float(acc[m][i, j])}
               for m, (name, settings) in methods.items() for i in range(P) for j, k in enumerate(ks)]
    pol = fit_strategy_policy(records, folds=2, seed=seed, fold_of_problem={rows[i]: int(folds[i]) for i in range(P)})
    pol.bins_model = DifficultyBins().fit(vals, p1)
    pol.model = dict(view.model)
    from scipy.stats import spearmanr

    oracle = difficulty_levels(bank, 5)
    pol.meta.update({"source": "collm calibrate --strategies", "bank": str(bank.path), "seeds": len(list(seeds)),
                     "bins": "predicted from the question (collm.difficulty.bins.DifficultyBins), cross-fitted",
                     # how the held-out predicted bins compare with the oracle's (pass@1 of the bank)
                     "bins_heldout": {"spearman": float(spearmanr(diff, -p1).statistic),
                                      "same_bin": float((pred == oracle).mean()),
                                      "within_one_bin": float((abs(pred - oracle) <= 1).mean()),
                                      "estimator_flops": float(est.mean())}})
    return pol
