"""Policies on a live model: what `collm ask`, the demo and the server call.

    answers = answer_with_policy(backend, prompts, task, policy, budget=4)

The policy drives a LiveSampler: one batched generate call per round and
sample count (the greedy pass first, then a few rounds of samples), so the
same code that was calibrated and evaluated on a bank replay runs here.
Which policy a model gets (the shipped one, a file, the fallback) is
collm.policies' business.
"""

from __future__ import annotations

from collm.allocation.base import Policy
from collm.budget import make_budget, minimum_flops
from collm.errors import CollmError
from collm.prompts import as_prompt
from collm.samplers import LiveSampler, tally
from collm.types import Answer, SamplingParams, Usage, sampling


def least_flops(backend, prompts, params: SamplingParams | None = None) -> float:
    """The smallest FLOPs budget per prompt answer_with_policy takes for these
    prompts: one worst-case greedy pass each (the whole prompt prefilled, then
    max_tokens decoded), as collm.budget reserves it."""
    prompts = [as_prompt(p) for p in prompts]
    tokens = [backend.count_prompt_tokens(p)[0] for p in prompts]
    return minimum_flops(tokens, backend.params, sampling(params).max_tokens) / max(len(prompts), 1)


def answer_with_policy(backend, prompts, task, policy: Policy, budget: float | None = None,
                       params: SamplingParams | None = None, *, flops: float | None = None,
                       max_samples: int | None = None) -> list[Answer]:
    """Answer every prompt, the policy deciding how many generations each gets.
    budget: average generations per prompt for the whole batch (a hard cap);
    flops: average FLOPs per prompt for the whole batch (a hard cap: every
    request's worst case is held until its real cost is known, collm.budget);
    either one also picks the policy's pace for it (Policy.paced) where the
    policy file records paces for several budgets;
    max_samples: the most generations any one prompt may get."""
    prompts = [as_prompt(p) for p in prompts]
    params = sampling(params)
    if policy.target.get("answers") == "program" and not task.name.endswith("+program"):
        raise CollmError("this policy was calibrated on program answers (each sample's own Python run): "
                         "pass --execute-code (or task NAME+program) to use it")
    policy = policy.paced(samples=budget, flops=flops)  # the pace calibrated for this budget, where recorded
    s = LiveSampler(backend, prompts, task, params, max_per_prompt=max_samples)
    if budget is not None or flops is not None:
        s.budget = make_budget(s.P, s.prompt_tokens, s.params, params.max_tokens, samples=budget, flops=flops)
    s.run(policy)
    out = []
    for j in range(s.P):
        key = policy.answer(s.draws[j])
        votes = {k: c for k, (c, *_) in tally(s.draws[j], policy.value("vote_cut")).items()}
        conf = policy.confidence(s.draws[j], int(s.q_tokens[j]), params.max_tokens)
        out.append(Answer(key, votes, int(s.gens[j]), f"policy:{policy.kind}", s.usage[j] or Usage(),
                          s.completions[j], {"difficulty": round(1 - conf, 4), "policy": policy.kind,
                           "ran_ahead_unused": int(s.unused[j])}))
    return out
