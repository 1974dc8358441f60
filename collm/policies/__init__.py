"""Policy files: the three kinds, one loader, and the policies shipped here.

    pol = load_policy("policy.json", model=backend.identity())   # any kind, checked against the model
    pol = policy_for(backend, "default", task)                    # what a command runs for --policy SPEC

The kinds, told apart by a marker in the file:

    allocation  {"collm_policy": 1, "kind": "marginal" | "early-stop" | ...}: how many
                generations each prompt gets, round by round (collm.allocation)
    strategy    {"collm_strategy_policy": 1, ...}: the strategy per predicted
                difficulty bin and budget (collm.strategies.select)
    thresholds  {"kind": "thresholds", ...}: N from the measured prefix entropy,
                then best-of-N (collm.allocation.thresholds)

This folder also holds the policies calibrated for the named models
(MODEL.json, MODEL.program.json for program answers, MODEL.strategies.json).
Every file is validated when read: a malformed one is a CollmError naming
the field, never a traceback later.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from collm.allocation import POLICIES, Policy, get_policy
from collm.allocation.base import describe_model, same_model
from collm.allocation.thresholds import ThresholdPolicy
from collm.errors import CollmError
from collm.files import read_json
from collm.strategies.select import KEY as STRATEGY_KEY
from collm.strategies.select import StrategyPolicy

ALLOCATION_KEY = "collm_policy"

# Used when no policy was calibrated for a model: stop once the greedy pass and
# the samples agree clearly, at most 8 generations (not tuned on any bank).
FALLBACK = {"kind": "early-stop", "params": {"conf": 0.9, "n_max": 8}}


def kind_of(d) -> str | None:
    """"allocation", "strategy" or "thresholds" for a policy file's contents, else None."""
    if not isinstance(d, dict):
        return None
    if ALLOCATION_KEY in d:
        return "allocation"
    if STRATEGY_KEY in d:
        return "strategy"
    if d.get("kind") == "thresholds":
        return "thresholds"
    return None


def policy_kind(path) -> str:
    """The kind of the policy file at `path` (a CollmError if it is none)."""
    k = kind_of(read_json(Path(path), "policy file"))
    if k is None:
        raise CollmError(f"{path}: not a collm policy file (no {ALLOCATION_KEY!r}, {STRATEGY_KEY!r} or "
                         "\"kind\": \"thresholds\")")
    return k


def load_policy(path, model: dict | None = None) -> Policy | StrategyPolicy | ThresholdPolicy:
    """Any policy file, validated; with `model` ({name, sha256, params}), one made
    for another model is refused (a thresholds ladder is model-free)."""
    path = Path(path)
    d = read_json(path, "policy file")
    kind = kind_of(d)
    pol = None
    if kind == "allocation":
        pol = Policy.from_file(path, model)
    elif kind == "strategy":
        pol = StrategyPolicy.from_file(path, model)
    elif kind == "thresholds":
        pol = ThresholdPolicy.from_dict(d, str(path))
    if pol is not None:
        pol.source = path.name  # what the server's collm object names (policy_label)
        return pol
    raise CollmError(f"{path}: not a collm policy file (no {ALLOCATION_KEY!r}, {STRATEGY_KEY!r} or "
                     "\"kind\": \"thresholds\")")


def shipped_policies() -> list[Path]:
    root = resources.files("collm") / "policies"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".json"))


def default_policy_path(model: dict, key: str = ALLOCATION_KEY, answers: str | None = None) -> Path | None:
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


def policy_label(policy) -> str | None:
    """The policy in a word or three, for answers: its file, kind and the model
    it was calibrated for ("policy.json: early-stop, calibrated for smollm2"),
    or "early-stop (uncalibrated fallback)"; None without a policy."""
    if policy is None:
        return None
    kind = getattr(policy, "kind", None) or type(policy).__name__
    kind = "strategy" if kind == "StrategyPolicy" else kind
    source = getattr(policy, "source", None)
    if source is None:
        return f"{kind} (uncalibrated fallback)"
    name = (getattr(policy, "model", None) or {}).get("name")
    return f"{source}: {kind}" + (f", calibrated for {name}" if name else "")


def fallback_policy(model: dict) -> Policy:
    pol = get_policy(FALLBACK["kind"], **FALLBACK["params"])
    pol.model = model
    return pol


def policy_for(backend, spec: str | None = "default", task=None, kind: str = ALLOCATION_KEY):
    """The policy a command runs for --policy SPEC on this backend:

    "none"              None (the caller's fixed N)
    None or "default"   the policy shipped for the backend's model (the one
                        calibrated on program answers when `task` runs the
                        samples' code), else the uncalibrated fallback; with
                        kind="collm_strategy_policy", the shipped strategy
                        policy (a CollmError when there is none)
    a path              that file, of any kind, refused if made for another model
    """
    if spec == "none":
        return None
    model = backend.identity()
    if spec not in (None, "", "default"):
        return load_policy(spec, model=model)
    program = task is not None and str(getattr(task, "name", task)).endswith("+program")
    found = default_policy_path(model, key=kind, answers="program" if program else None)
    if found is not None:
        return load_policy(found, model=model)
    if kind == STRATEGY_KEY:
        raise CollmError(f"no strategy policy was fitted for {describe_model(model)}; pass one with --policy "
                         "(`collm calibrate --strategies` fits one from a bank)")
    return fallback_policy(model)


__all__ = ["ALLOCATION_KEY", "FALLBACK", "POLICIES", "STRATEGY_KEY", "default_policy_path", "fallback_policy",
           "kind_of", "load_policy", "policy_for", "policy_kind", "policy_label", "shipped_policies"]
