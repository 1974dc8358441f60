"""The policy interface, scikit-learn style: parameters in the constructor,
fit(view, samples=B | flops=F) learns its state on a pilot bank so that it
spends about B generations (or F FLOPs) per prompt there, run(sampler) drives
a sampler round by round (a bank replay or a live backend), and the policy
saves to / loads from JSON.

Policy file:
    {"collm_policy": 1, "kind": ..., "collm_version": ..., "model": {name, sha256, params},
     "params": {...}, "state": {...}, "target": {...}, "cv": {...}}
A file made for another model (sha256, else name) or another policy format or
collm version is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from collm import __version__
from collm.allocation.state import leader
from collm.errors import CollmError
from collm.files import read_json

FORMAT = 1
POLICIES: dict[str, type["Policy"]] = {}


def register(cls):
    POLICIES[cls.kind] = cls
    return cls


def get_policy(kind: str, **params) -> "Policy":
    if kind not in POLICIES:
        raise CollmError(f"unknown policy {kind!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[kind](**params)


class Policy:
    kind = "policy"
    defaults: dict = {}

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise CollmError(f"policy {self.kind!r} has no parameter(s) {', '.join(sorted(unknown))}")
        self.params = {**self.defaults, **params}
        self.state: dict = {}
        self.model: dict = {}
        self.target: dict = {}
        self.cv: dict = {}

    # ---- learning and running ----
    def fit(self, view, samples: float | None = None, flops: float | None = None) -> "Policy":
        self.model = view.model
        self.target = {"samples": samples, "flops": flops, "max_tokens": view.max_tokens,
                       "mean_sample_tokens": view.mean_sample_tokens}
        if getattr(view, "program_answers", False):  # live use must run the samples' code too
            self.target["answers"] = "program"
        return self

    def run(self, sampler) -> None:
        raise NotImplementedError

    def answer(self, draws):
        return leader(draws, self.params.get("vote_cut", False))[0]

    # ---- JSON ----
    def to_dict(self) -> dict:
        return {"collm_policy": FORMAT, "kind": self.kind, "collm_version": __version__, "model": self.model,
                "params": self.params, "state": self.state, "target": self.target, "cv": self.cv}

    def save(self, path) -> None:
        d = self.to_dict()  # one top-level key a line: readable, and the weights stay compact
        Path(path).write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}\n")

    @classmethod
    def from_dict(cls, d: dict, source: str = "<policy>") -> "Policy":
        if not isinstance(d, dict) or d.get("collm_policy") != FORMAT:
            raise CollmError(f"{source}: not a collm policy file (format {FORMAT})")
        have = str(d.get("collm_version", ""))
        if have.split(".")[:2] != __version__.split(".")[:2]:
            raise CollmError(f"{source}: made by collm {have or 'unknown'}, incompatible with collm {__version__}; calibrate it again")
        kind = d.get("kind")
        if kind not in POLICIES:
            raise CollmError(f"{source}: unknown policy kind {kind!r}")
        p = POLICIES[kind](**d.get("params", {}))
        p.model, p.state, p.target, p.cv = d.get("model", {}), d.get("state", {}), d.get("target", {}), d.get("cv", {})
        return p


def same_model(a: dict, b: dict) -> bool:
    """By sha256 when both have one (a 16+ digit prefix is enough), else by name (case-insensitive)."""
    sa, sb = str(a.get("sha256") or "").lower(), str(b.get("sha256") or "").lower()
    if sa and sb:
        return min(len(sa), len(sb)) >= 16 and (sa.startswith(sb) or sb.startswith(sa))
    na, nb = str(a.get("name", "")).lower(), str(b.get("name", "")).lower()
    return bool(na) and na == nb


def load_policy(path, model: dict | None = None) -> Policy:
    """Read a policy file; with `model`, refuse a policy made for another model."""
    path = Path(path)
    d = read_json(path, "policy file")
    p = Policy.from_dict(d, str(path))
    if model is not None and not same_model(p.model, model):
        raise CollmError(f"{path}: this policy was calibrated for {p.model.get('name') or 'another model'} "
                         f"({(p.model.get('sha256') or '')[:12] or 'no sha256'}), not for {model.get('name') or 'this model'} "
                         f"({str(model.get('sha256') or '')[:12] or 'no sha256'}); calibrate one with `collm calibrate`")
    return p
