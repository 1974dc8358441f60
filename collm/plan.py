"""Planning arithmetic: when does a small model with more test-time samples
cost the same as a larger model, and how big should a model be for a
training budget.

FLOPs-matched comparison (Snell et al. 2024, "Scaling LLM Test-Time Compute
Optimally can be More Effective than Scaling Model Parameters",
arXiv 2408.03314, sec. 7). Costs follow Kaplan et al.: pretraining a model
of N parameters on D tokens costs about 6·N·D FLOPs; inference on DI tokens
costs about 2·N·DI. A small model (P parameters) and a large one
(Q = M·P parameters) are both pretrained on D tokens (Snell et al.'s setup;
`large_pretrain_tokens` relaxes it) and then serve the same queries, which
the large model answers with one sample each, processing DI tokens in all
(prompts and answers, summed over every query it will ever serve).

The small model may spend k times the large model's inference tokens:

    6·P·D + 2·P·DI·k = 6·Q·D_L + 2·Q·DI
    k = (6·(Q·D_L − P·D) + 2·Q·DI) / (2·P·DI)
      = M + 3·(M − 1)/R                  when D_L = D, with R = DI / D

k is "samples per question": each sample costs what one large-model answer
costs in tokens (prompt included, as in Snell et al.). R is the ratio of
inference to pretraining tokens: R << 1 (few queries, e.g. a research
deployment) means pretraining dominates total cost, so the small model's
saved pretraining buys many extra samples; R >> 1 (a busy product) means
inference dominates and k tends to M, the plain per-token price ratio.

With prefix caching a prompt shared by k samples is prefilled once
(collm.flops), so the k above is conservative: `samples_with_prefix_sharing`
converts it to the number of completions that fit when prompts are shared.

Chinchilla sizing (Hoffmann et al. 2022, "Training Compute-Optimal Large
Language Models", arXiv 2203.15556): for a training budget C = 6·N·D, the
loss-optimal model grows as N_opt ∝ C^0.5 with about 20 tokens per
parameter, so N_opt = sqrt(C / 120) and D_opt = 20·N_opt. Assumptions: dense
decoder-only transformers, one epoch over fresh data, the 6·N·D cost model,
training cost only (inference cost is ignored; a model that will serve many
tokens is better made smaller and trained longer, Sardana et al. 2023).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from collm.bank import evaluate as bank_eval
from collm.errors import CollmError
from collm.flops import inference_flops, pretraining_flops
from collm.report import sources

CHINCHILLA_TOKENS_PER_PARAM = 20.0

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_quantity(text: str | float | int, what: str = "value") -> float:
    """'494032768', '494_032_768', '0.5B', '7b', '1.4T', '3e11', '12k' -> float.
    Suffixes: k, M, B (or G), T, P (powers of 1000)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().replace(",", "").replace("_", "")
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtTpP]?)", s)
        if not m:
            raise CollmError(f"{what}: cannot read {text!r} as a number (examples: 494032768, 0.5B, 1.4T, 3e11)")
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise CollmError(f"{what} must be a positive number, got {text!r}")
    return value


@dataclass
class MatchedPlan:
    """The FLOPs-matched comparison of a small model with k samples against
    a large model with one. All FLOPs are totals over pretraining plus every
    query served."""

    small_params: float
    large_params: float
    pretrain_tokens: float  # D, the small model's (and by default the large one's)
    large_pretrain_tokens: float  # D_L
    inference_tokens: float  # DI, the large model's, over all queries
    ratio_m: float  # M = Q / P
    ratio_r: float  # R = DI / D
    samples: float  # k, samples per question the small model may spend
    large_total_flops: float
    large_pretrain_flops: float
    large_inference_flops: float
    small_pretrain_flops: float
    small_inference_budget_flops: float  # what is left for inference: 2·P·DI·k

    def to_dict(self) -> dict:
        return asdict(self)


def flops_matched_samples(small_params, large_params, pretrain_tokens, inference_tokens,
                          large_pretrain_tokens=None) -> MatchedPlan:
    """Samples per question k at which the small model's total FLOPs (pretraining
    + k samples per question) equal the large model's (pretraining + one sample
    per question). See the module docstring for the derivation and conventions."""
    P, Q = float(small_params), float(large_params)
    D, DI = float(pretrain_tokens), float(inference_tokens)
    DL = D if large_pretrain_tokens is None else float(large_pretrain_tokens)
    for name, v in (("small params", P), ("large params", Q), ("pretrain tokens", D),
                    ("inference tokens", DI), ("large pretrain tokens", DL)):
        if not (math.isfinite(v) and v > 0):
            raise CollmError(f"{name} must be a positive number, got {v!r}")
    if Q <= P:
        raise CollmError(f"the large model ({Q:.4g} params) must be larger than the small one ({P:.4g})")
    large_pt, large_inf = pretraining_flops(Q, DL), inference_flops(Q, DI)
    small_pt = pretraining_flops(P, D)
    budget = large_pt + large_inf - small_pt
    if budget <= 0:
        raise CollmError("the small model's pretraining alone costs more than the large model in total: "
                         "no inference budget is left (check --large-pretrain-tokens)")
    k = budget / inference_flops(P, DI)
    return MatchedPlan(P, Q, D, DL, DI, Q / P, DI / D, k, large_pt + large_inf, large_pt, large_inf,
                       small_pt, budget)


def samples_with_prefix_sharing(k: float, prompt_tokens: float, completion_tokens: float) -> float:
    """Snell et al. price a sample as a whole query (prompt + completion).
    With the prompt prefilled once for all samples, a budget of k such
    queries, k·(p + c) tokens, holds (k·(p + c) − p) / c completions."""
    p, c = float(prompt_tokens), float(completion_tokens)
    if c <= 0:
        raise CollmError("completion tokens per sample must be positive")
    return (k * (p + c) - p) / c


@dataclass
class ChinchillaSize:
    compute: float
    params: float
    tokens: float
    tokens_per_param: float

    def to_dict(self) -> dict:
        return asdict(self)


def chinchilla_optimal(compute: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> ChinchillaSize:
    """Compute-optimal model size for a training budget of `compute` FLOPs:
    C = 6·N·D with D = r·N gives N = sqrt(C / (6·r)), D = r·N (r = 20,
    Hoffmann et al. 2022). N grows as C^0.5."""
    C, r = float(compute), float(tokens_per_param)
    if not (math.isfinite(C) and C > 0 and math.isfinite(r) and r > 0):
        raise CollmError("compute and tokens per parameter must be positive numbers")
    n = math.sqrt(C / (6.0 * r))
    return ChinchillaSize(C, n, r * n, r)


def chinchilla_tokens(params: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> float:
    """Chinchilla-optimal pretraining tokens for a model of `params` parameters."""
    return tokens_per_param * float(params)


def bank_check(bank, plan: MatchedPlan, policies=(), target: float | None = None, seeds=20,
               params: int | None = None) -> dict:
    """Can the small model, whose samples the bank holds, reach `target`
    accuracy within the FLOPs-matched budget?

    The large model is taken to spend, per question, the tokens of the small
    model's greedy answer (prompt + greedy tokens, the bank's mean): the
    budget per question is k x 2·P·t FLOPs. Each candidate (majority of n
    samples for every n up to the bank's K, and each policy) fits when its
    replayed FLOPs per question (prompt prefilled once) are within it."""
    P = sources.params_for(bank, params)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    A = bank.arrays()
    t = float((A["prompt_tokens"] + A["greedy_n"]).mean())
    budget = plan.samples * inference_flops(P, t)
    prompt, completion = float(A["prompt_tokens"].mean()), float(A["ntok"].mean())
    out = {"bank": bank.path, "params": P, "problems": len(bank), "k": bank.k,
           "tokens_per_question": t, "budget_flops_per_question": budget,
           "completions_with_prefix_sharing": samples_with_prefix_sharing(plan.samples, prompt, completion),
           "mean_prompt_tokens": prompt, "mean_completion_tokens": completion,
           "target_accuracy": target, "candidates": []}
    if abs(P - plan.small_params) > 0.01 * plan.small_params:
        out["warning"] = (f"the bank's model has {P:,} parameters, --small-params says {plan.small_params:,.0f}: "
                          "the budget uses --small-params, the bank's FLOPs its own model")
    curve = bank_eval.uniform_curve(bank, range(1, bank.k + 1), seeds, P)
    fits = [(n, v) for n, v in sorted(curve.items()) if v["flops"] <= budget]
    greedy = bank_eval.greedy_point(bank, P)
    cands = [{"method": "Greedy", "samples": 1.0, **_pick(greedy)}]
    if fits:
        n, v = max(fits, key=lambda nv: (nv[1]["accuracy"], -nv[0]))
        cands.append({"method": f"Majority of {n} (best uniform within budget)", "samples": float(n), **_pick(v)})
    for path in policies:
        m = sources.policy(bank, P, path, seeds, per_problem=False)
        cands.append({"method": m.name, "samples": m.samples, "accuracy": m.accuracy, "flops": m.flops})
    for c in cands:
        c["within_budget"] = bool(c["flops"] <= budget)
        c["reaches_target"] = None if target is None else bool(c["within_budget"] and c["accuracy"] >= target)
    out["candidates"] = cands
    if target is not None:
        pts = [{"samples": n, "flops": v["flops"], "accuracy": v["accuracy"]} for n, v in sorted(curve.items())]
        out["uniform_flops_to_target"] = bank_eval.cost_to_reach(pts, target, key="flops")
        out["uniform_samples_to_target"] = bank_eval.cost_to_reach(pts, target, key="samples")
        out["reaches_target"] = any(c["reaches_target"] for c in cands)
    if plan.samples > bank.k:
        out["note"] = (f"the budget allows {plan.samples:.0f} samples per question; the bank holds {bank.k}, "
                       f"so it can only tell what the first {bank.k} buy (no extrapolation)")
    return out


def _pick(v: dict) -> dict:
    return {"accuracy": float(v["accuracy"]), "flops": float(v["flops"])}
