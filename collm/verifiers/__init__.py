"""Verifiers: score candidate answers, whole (outcome) or step by step (process).

    v = get_verifier("self-certainty")                      # free: the model's own log-probs
    v = get_verifier("probe:probe.json")                    # a fitted correctness probe
    v = get_verifier("arithmetic")                          # recompute the equations a solution writes
    v = get_verifier("http://127.0.0.1:8000/pooling", model="Qwen/Qwen2.5-Math-PRM-7B")
    v(prompts, completions) -> one score per completion (higher is better)

Built in: self-certainty (collm.verifiers.certainty), the correctness probe
(collm.verifiers.probe), the arithmetic check (collm.verifiers.arithmetic),
a remote reward model over HTTP (collm.verifiers.remote).
"""

from __future__ import annotations

from collm.errors import CollmError
from collm.verifiers.arithmetic import ArithmeticCheck
from collm.verifiers.base import AGGREGATIONS, MODES, Verifier, aggregate, split_steps
from collm.verifiers.certainty import SelfCertainty
from collm.verifiers.probe import Probe
from collm.verifiers.remote import RemoteRM

VERIFIERS = ["self-certainty", "arithmetic", "probe:PATH", "http(s)://URL"]


def get_verifier(spec: "str | Verifier | None", mode: str | None = None, aggregation: str | None = None,
                 fallback: str | None = None, **options) -> Verifier:
    """Build a verifier from its name: "self-certainty", "probe:PATH" (a saved
    probe), or a reward model's URL ("http://..." or "remote:http://...").
    `options` go to the remote verifier (model, template, step_sep, raw,
    timeout). `fallback` names a verifier used when the remote one fails (off
    unless asked for). A Verifier passes through unchanged."""
    if isinstance(spec, Verifier):
        return spec
    mode = mode or "outcome"
    aggregation = aggregation or "last"
    spec = (spec or "self-certainty").strip()
    if spec in ("self-certainty", "certainty"):
        return SelfCertainty(mode, aggregation)
    if spec == "arithmetic":
        return ArithmeticCheck(mode, aggregation)
    if spec.startswith("probe:"):
        return Probe.load(spec[len("probe:"):], mode, aggregation)
    if spec == "probe":
        raise CollmError("give the probe's file: --verifier probe:PATH (fit one with collm.verifiers.probe.Probe)")
    if spec.startswith("remote:"):
        spec = spec[len("remote:"):]
    if spec.startswith(("http://", "https://")):
        fb = get_verifier(fallback, mode, aggregation) if fallback else None
        return RemoteRM(spec, mode=mode, aggregation=aggregation, fallback=fb, **options)
    raise CollmError(f"unknown verifier {spec!r}; known: {', '.join(VERIFIERS)}")


__all__ = ["AGGREGATIONS", "MODES", "VERIFIERS", "ArithmeticCheck", "Probe", "RemoteRM", "SelfCertainty", "Verifier", "aggregate",
           "get_verifier", "split_steps"]
