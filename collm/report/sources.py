"""Where the report's numbers come from: the one place that calls the bank
replay (collm.bank.evaluate) and the policy evaluation
(collm.allocation.evaluate), and turns their answers into `Method` rows.

Everything else in collm.report works on `Method` rows only, so a change in
those modules' interfaces is an edit here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collm.allocation import BankView, Policy, replay
from collm.allocation.evaluate import policy_report as allocation_report
from collm.bank import evaluate as bank_eval
from collm.bank.format import Bank
from collm.datasets import DATASETS
from collm.errors import CollmError
from collm.flops import inference_flops


@dataclass
class Method:
    """One row of the comparison: how a way of answering did on a bank.

    Per-problem arrays are means over seeds, aligned with bank.problems;
    `allocations` is the list of samples given to each problem, over every
    seed (for the histogram), when known."""

    name: str
    kind: str  # "greedy" | "uniform" | "policy"
    accuracy: float
    flops: float  # per question, all included
    samples: float  # per question
    correct: np.ndarray  # [P]
    problem_flops: np.ndarray  # [P]
    problem_samples: np.ndarray | None = None  # [P]; None when the policy did not say
    allocations: np.ndarray | None = None  # samples per (seed, problem), flattened
    lo: float | None = None  # 95% bootstrap interval of accuracy
    hi: float | None = None
    latency: dict | None = None  # {"p50_s", "p95_s", "questions_per_s"} when timed live
    extra: dict = field(default_factory=dict)


def params_for(bank: Bank, override: int | None = None) -> int:
    """The model's parameter count: --model-params, else the bank's header."""
    n = bank_eval.params_of(bank, override)
    if not n:
        raise CollmError(f"{bank.path}: the bank's header does not give the model's parameter count; "
                         "pass --model-params N")
    return n


def dataset_of(bank: Bank, override: str | None = None) -> str | None:
    """The dataset name: --dataset, else the header's, else the file name's
    first word when it names a known dataset (gsm8k_test_... -> gsm8k)."""
    if override:
        if override not in DATASETS:
            raise CollmError(f"unknown dataset {override!r}; known: {', '.join(sorted(DATASETS))}")
        return override
    d = bank.header.get("dataset")
    if isinstance(d, dict):
        d = d.get("name")
    if d:
        return str(d)
    stem = Path(bank.path).name.split("_")[0].split(".")[0]
    return stem if stem in DATASETS else None


def _bootstrap(per_problem: np.ndarray) -> tuple[float, float]:
    return bank_eval.bootstrap_ci(np.asarray(per_problem, float))


def greedy(bank: Bank, params: int) -> Method:
    A = bank.arrays()
    pt = bank_eval.greedy_point(bank, params)
    fl = inference_flops(params, A["prompt_tokens"] + A["greedy_n"]).astype(float)
    P = len(bank)
    return Method("Greedy", "greedy", pt["accuracy"], pt["flops"], 1.0, A["greedy_ok"].astype(float), fl,
                  np.ones(P), np.ones(P), pt["lo"], pt["hi"], timing(bank, "greedy"))


def uniform(bank: Bank, params: int, ks, seeds, names: dict | None = None) -> dict[int, Method]:
    """Majority vote of the first k draws on every problem, for each k."""
    ks = sorted({int(k) for k in ks})
    cor, tok = bank_eval.replay(bank, ks, seeds)  # [S, P, len(ks)]
    prompt = bank.arrays()["prompt_tokens"][:, None]
    per_correct = cor.mean(axis=0)
    per_flops = inference_flops(params, prompt + tok.mean(axis=0)).astype(float)
    S, P = cor.shape[:2]
    out = {}
    for j, k in enumerate(ks):
        lo, hi = _bootstrap(per_correct[:, j])
        name = (names or {}).get(k) or f"Majority of {k}"
        out[k] = Method(name, "uniform", float(per_correct[:, j].mean()), float(per_flops[:, j].mean()), float(k),
                        per_correct[:, j], per_flops[:, j], np.full(P, float(k)), np.full(S * P, float(k)), lo, hi,
                        timing(bank, "samples", k))
    return out


def uniform_curve(bank: Bank, params: int, seeds) -> list[dict]:
    """Accuracy and FLOPs of majority-of-k for k = 1, 2, 4, ..., K (and K)."""
    ks = sorted({2 ** j for j in range(int(math.log2(bank.k)) + 1)} | {bank.k})
    curve = bank_eval.uniform_curve(bank, ks, seeds, params)
    return [{"k": k, **v} for k, v in sorted(curve.items())]


def oracle_frontier(bank: Bank, params: int, seeds) -> list[dict]:
    return bank_eval.oracle_frontier(bank, seeds, "flops", params=params)


def difficulty_levels(bank: Bank, n_bins: int = 5) -> np.ndarray:
    """[P] Snell et al.'s difficulty level, 1 (easiest) .. n_bins, from each
    problem's pass@1 over the bank's samples (an oracle notion of difficulty)."""
    return bank_eval.difficulty_levels(bank, n_bins)


def pass1(bank: Bank) -> np.ndarray:
    return bank_eval.pass1(bank)


# ---- policies -------------------------------------------------------------

def policy_report(bank: Bank, path: str, seeds, params: int, per_problem: bool = True) -> dict:
    """collm.allocation.evaluate.policy_report (accuracy, samples, flops with
    the estimators' share included, estimator_flops, ...), plus per-problem
    rows for the histogram, the difficulty bins and the fairness section:
    taken from the report when it has "per_problem", else gathered by
    replaying the policy on the same seeds (collm.allocation.replay)."""
    rep = dict(allocation_report(bank, path, seeds=seeds, params=params))
    if per_problem and "per_problem" not in rep:
        view = BankView(bank, params)
        pol = Policy.from_file(path)
        runs = [replay(pol, view, int(s)) for s in seeds]
        rep["per_problem"] = {"correct": np.stack([r["correct"] for r in runs]).astype(float),
                              "samples": np.stack([r["samples"] for r in runs]),
                              "flops": np.stack([r["flops"] for r in runs])}  # estimators included
    return rep


def policy(bank: Bank, params: int, path: str, seeds, per_problem: bool = True) -> Method:
    """A collm allocation policy (a saved JSON) replayed on the bank
    (per_problem=False: the aggregate figures only, faster)."""
    if not Path(path).is_file():
        raise CollmError(f"policy file not found: {path}")
    try:
        rep = policy_report(bank, path, list(seeds), params, per_problem)
    except CollmError as e:  # a malformed file, another model, another max_tokens...
        raise CollmError(f"this policy could not be replayed on {bank.path}: {e}") from None
    kind = (rep.get("policy") or {}).get("kind") if isinstance(rep.get("policy"), dict) else None
    stem = Path(path).stem
    name = stem if not kind or kind.replace("-", "_") in stem else f"{kind} ({stem})"
    return policy_method(bank, rep, default_name=name)


def policy_method(bank: Bank, rep: dict, default_name: str = "policy") -> Method:
    """A Method from a policy report: accuracy, samples and flops per
    question (flops with the estimators' share included, as
    collm.allocation reports them), estimator_flops; per_problem arrays,
    when present: "correct", "samples" and "flops", each [P] or [S, P]."""
    P = len(bank)
    per = rep.get("per_problem") or {}

    def arr(key):
        v = per.get(key)
        if v is None:
            return None
        a = np.asarray(v, float)
        if a.shape[-1] != P:
            raise CollmError(f"policy report: per_problem[{key!r}] has {a.shape[-1]} problems, the bank {P}")
        return a

    def mean(a):
        return None if a is None else (a.mean(axis=0) if a.ndim == 2 else a)

    correct, samples, flops = arr("correct"), arr("samples"), arr("flops")
    total = float(rep["flops"])
    correct_m = mean(correct)
    lo = hi = None
    if correct_m is None:  # aggregate only
        correct_m = np.full(P, np.nan)
    else:
        lo, hi = _bootstrap(correct_m)
    flops_m = np.full(P, total) if flops is None else mean(flops)
    extra = {"estimator_flops": float(rep.get("estimator_flops", 0.0) or 0.0)}
    for k in ("ratio_to_uniform", "ratio_bound", "in_sample"):
        if k in rep:
            extra[k] = rep[k]
    cv = rep.get("cv")
    if isinstance(cv, dict) and cv.get("accuracy") is not None:
        extra["cv"] = {k: cv[k] for k in ("accuracy", "samples", "flops", "ratio_to_uniform", "ratio_bound", "folds")
                       if k in cv}
    return Method(f"collm: {rep.get('name') or default_name}", "policy", float(rep["accuracy"]), total,
                  float(rep["samples"]), correct_m, flops_m, mean(samples),
                  None if samples is None else samples.ravel(), rep.get("lo", lo), rep.get("hi", hi),
                  rep.get("latency"), extra)


# ---- timings --------------------------------------------------------------

def timing(bank: Bank, kind: str, k: int | None = None) -> dict | None:
    """p50 / p95 seconds per question and questions per second, for a bank
    built live that recorded wall-clock seconds per problem in
    `extra["timing"]` = {"greedy_s": float, "samples_s": float} (decoding
    that problem's greedy answer; all K of its samples, as one batch). Only
    what was timed is reported: greedy, and majority of all K samples. A
    replay has no time of its own: None means "n/a (replayed)"."""
    if kind == "samples" and k != bank.k:
        return None
    key = "greedy_s" if kind == "greedy" else "samples_s"
    secs = []
    for p in bank.problems:
        t = p.extra.get("timing")
        if not isinstance(t, dict) or not isinstance(t.get(key), (int, float)):
            return None
        secs.append(float(t[key]))
    a = np.asarray(secs)
    if not len(a) or a.sum() <= 0:
        return None
    return {"p50_s": float(np.percentile(a, 50)), "p95_s": float(np.percentile(a, 95)),
            "questions_per_s": float(len(a) / a.sum()), "source": "bank"}
