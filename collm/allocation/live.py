"""Policies on a live model: what `collm ask`, the demo and the server call.

    policy = load_policy_for(backend)             # the shipped policy for its model
    answers = answer_with_policy(backend, prompts, task, policy, budget=4)

The policy drives a LiveSampler: one batched generate call per round and
sample count (the greedy pass first, then a few rounds of samples), so the
same code that was calibrated and evaluated on a bank replay runs here.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

from collm.allocation.base import Policy, get_policy, load_policy, same_model
from collm.allocation.budget import make_budget
from collm.allocation.sampler import LiveSampler
from collm.allocation.state import tally
from collm.difficulty.learned import sigmoid
from collm.errors import CollmError
from collm.prompts import as_prompt
from collm.strategies.base import Answer

# Used when no policy was calibrated for a model: stop once the greedy pass and
# the samples agree clearly, at most 8 generations (not tuned on any bank).
FALLBACK = {"kind": "early-stop", "params": {"conf": 0.9, "n_max": 8}}


def backend_model(backend) -> dict:
    """{name, sha256, params} of the weights behind a backend, as far as it says."""
    params = getattr(backend, "params", 0)
    res = getattr(backend, "resolved", None)
    if res is not None and getattr(res, "sha256", None):
        return {"name": res.name, "sha256": res.sha256, "params": params}
    mid = str(getattr(backend, "model_id", "") or "")
    if re.fullmatch(r"[0-9a-f]{64}", mid):
        return {"name": None, "sha256": mid, "params": params}
    m = re.fullmatch(r"(.+)@sha256:([0-9a-f]{16,64})", mid)
    if m:
        return {"name": m.group(1), "sha256": m.group(2), "params": params}
    return {"name": mid or getattr(backend, "name", None), "sha256": None, "params": params}


def shipped_policies() -> list[Path]:
    root = resources.files("collm") / "policies"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".json"))


def default_policy_path(model: dict, key: str = "collm_policy", answers: str | None = None) -> Path | None:
    """The shipped policy calibrated for this model, if any: an allocation
    policy, or with key="collm_strategy_policy" a per-bin strategy policy.
    answers="program" prefers one calibrated on program answers (for
    --execute-code) and falls back to the plain one; otherwise a policy that
    needs program answers is never chosen."""
    plain = program = None
    for p in shipped_policies():
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(d, dict) and key in d and same_model(d.get("model", {}), model):
            if (d.get("target") or {}).get("answers") == "program":
                program = program or p
            else:
                plain = plain or p
    return (program or plain) if answers == "program" else plain


def load_policy_for(backend, path: str | None = None, task=None) -> Policy:
    """A policy file for this backend's model (refused if made for another), or
    the shipped default for the model (the one calibrated on program answers
    when `task` runs the samples' code), or the documented uncalibrated fallback."""
    model = backend_model(backend)
    if path not in (None, "", "default"):
        return load_policy(path, model=model)
    program = task is not None and str(getattr(task, "name", task)).endswith("+program")
    found = default_policy_path(model, answers="program" if program else None)
    if found is not None:
        return load_policy(found, model=model)
    pol = get_policy(FALLBACK["kind"], **FALLBACK["params"])
    pol.model = model
    return pol


def confidence(policy: Policy, draws, q_tokens: int, max_tokens: int) -> float:
    """The policy's belief that the answer is right (marginal: its value model;
    otherwise the leader's share of the votes)."""
    if policy.kind == "marginal" and policy.state.get("W"):
        from collm.allocation.marginal import grid_index

        grid = policy.state["grid"]
        a = grid_index(len(draws), grid)
        x = policy._features(draws, q_tokens, max_tokens)
        return float(sigmoid(np.asarray(policy.state["W"])[a, a] @ x))
    t = tally(draws, policy.params.get("vote_cut", False))
    return max((c for c, *_ in t.values()), default=0) / max(len(draws), 1)


def answer_with_policy(backend, prompts, task, policy: Policy, budget: float | None = None, *,
                       temperature: float = 0.8, top_p: float = 1.0, top_k: int = 0, max_tokens: int = 512, seed: int = 0,
                       max_samples: int | None = None) -> list[Answer]:
    """Answer every prompt, the policy deciding how many generations each gets.
    budget: average generations per prompt for the whole batch (a hard cap)."""
    prompts = [as_prompt(p) for p in prompts]
    if policy.target.get("answers") == "program" and not task.name.endswith("+program"):
        raise CollmError("this policy was calibrated on program answers (each sample's own Python run): "
                         "pass --execute-code (or task NAME+program) to use it")
    s = LiveSampler(backend, prompts, task, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens, seed=seed)
    if budget is not None:
        s.budget = make_budget(s.P, s.prompt_tokens, s.params, max_tokens, samples=budget)
    if max_samples is not None and "n_max" in policy.params:
        policy = type(policy).from_dict({**policy.to_dict(), "params": {**policy.params, "n_max": int(max_samples)}})
    policy.run(s)
    out = []
    for j in range(s.P):
        key = policy.answer(s.draws[j])
        votes = {k: c for k, (c, *_) in tally(s.draws[j], policy.params.get("vote_cut", False)).items()}
        conf = confidence(policy, s.draws[j], int(s.q_tokens[j]), max_tokens)
        from collm.types import Usage

        out.append(Answer(key, votes, int(s.gens[j]), f"policy:{policy.kind}", s.usage[j] or Usage(),
                          s.completions[j], {"difficulty": round(1 - conf, 4), "policy": policy.kind}))
    return out
