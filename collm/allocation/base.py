"""The policy interface, scikit-learn style.

    policy = get_policy("marginal", n_max=16)      # hyperparameters, kept as given
    policy.fit(view, samples=8)                   # learns on a pilot bank (collm.allocation.replay.BankView)
    policy.run(sampler)                           # drives a sampler round by round (bank replay or live)
    policy.get_params(), policy.state             # what was given, what was learned
    policy.save("policy.json"); collm.policies.load_policy("policy.json", model=...)

fit(view, samples=B | flops=F) learns its state so that the policy spends
about B generations (or F FLOPs) per prompt there. Hyperparameters stay as
given; what fit learns goes to `state` (a fitted knob that is also a
hyperparameter, e.g. marginal's `lam`, is read through value(): the learned
value when there is one, else the given one).

Each kind declares its hyperparameters as a pydantic model (`Params`): types,
ranges and defaults in one place, checked when a policy is made and when a
file is read, so a bad file is a clear error, never a traceback at run time.

Policy file:
    {"collm_policy": 1, "kind": ..., "collm_version": ..., "model": {name, sha256, params, ...},
     "params": {...}, "state": {...}, "target": {...}, "cv": {...}}
A file made for another model (sha256, else name) or another policy format or
collm version is refused.

Paces: state["paces"] (optional) lists the learned knobs calibrated for
other budgets on the same bank, each {"samples", "flops", "learned": {...}}
(what it spent per prompt there, cross-validated, and the knobs). A live
budget then picks its pace, paced(): the pace calibrated for the largest
budget that fits the one given, so a policy asked for 4 generations (or the
FLOPs of 4) does not run at the pace of 8 until the hard cap stops it.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from collm.errors import CollmError
from collm.files import read_json
from collm.samplers import leader, tally
from collm.version import __version__

FORMAT = 1
POLICIES: dict[str, type["Policy"]] = {}


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError("must be a finite number")
    return float(x)


# JSON types, strictly: a number is never a string or a bool, a count is a whole number
Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]
Count = Annotated[StrictInt, Field(ge=1)]


class Params(BaseModel):
    """Hyperparameters every kind has; subclasses add their own."""

    model_config = ConfigDict(extra="forbid")
    vote_cut: StrictBool = False


class ModelIdentity(BaseModel):
    """Which weights a policy or bank is for (extra fields, e.g. an upstream's URL, are kept)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    sha256: str | None = None
    params: Annotated[StrictInt, Field(ge=0)] | None = None


class Target(BaseModel):
    model_config = ConfigDict(extra="allow")
    samples: Number | None = None
    flops: Number | None = None
    max_tokens: Count | None = None
    mean_sample_tokens: Number | None = None
    answers: str | None = None


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    collm_policy: StrictInt
    kind: str
    collm_version: str = ""
    model: ModelIdentity = ModelIdentity()
    params: dict[str, Any] = {}
    state: dict[str, Any] = {}
    target: Target = Target()
    cv: dict[str, Any] = {}


def register(cls):
    POLICIES[cls.kind] = cls
    cls.defaults = cls.Params().model_dump()
    return cls


def get_policy(kind: str, **params) -> "Policy":
    if kind not in POLICIES:
        raise CollmError(f"unknown policy {kind!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[kind](**params)


def describe_errors(e: ValidationError, where: str = "") -> str:
    """A pydantic error as one readable line: field path, what is wrong."""
    parts = []
    for err in e.errors()[:4]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        loc = f"{where}.{loc}" if where and loc else (where or loc)
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


class Policy:
    kind = "policy"
    Params = Params
    defaults: dict = {}
    learned: tuple[str, ...] = ()  # hyperparameters fit() sets from the pilot bank (stored in state)

    def __init__(self, **params):
        try:
            self.params = self.Params(**params).model_dump()
        except ValidationError as e:
            bad = [k for k in params if k not in self.Params.model_fields]
            if bad:
                raise CollmError(f"policy {self.kind!r} has no parameter(s) {', '.join(sorted(bad))}") from None
            raise CollmError(f"policy {self.kind!r}: bad parameter ({describe_errors(e, 'params')})") from None
        self.state: dict = {}
        self.model: dict = {}
        self.target: dict = {}
        self.cv: dict = {}

    # ---- scikit-learn's conventions ----
    def get_params(self) -> dict:
        """The hyperparameters as given (a copy)."""
        return copy.deepcopy(self.params)

    def set_params(self, **params) -> "Policy":
        self.params = self.Params(**{**self.params, **params}).model_dump()
        return self

    def value(self, name: str):
        """A knob as the policy runs it: the learned value when fit() set one, else the hyperparameter."""
        return self.state[name] if name in self.learned and name in self.state else self.params[name]

    def paced(self, samples: float | None = None, flops: float | None = None) -> "Policy":
        """This policy at the pace calibrated for a budget (per prompt; FLOPs
        when given, else samples): the recorded pace with the largest budget
        that fits it, or the smallest one when none fits. Without paces (or a
        budget) the policy itself."""
        paces = self.state.get("paces") or []
        key, want = ("flops", flops) if flops is not None else ("samples", samples)
        paces = [p for p in paces if p.get(key) is not None]
        if want is None or not paces:
            return self
        fits = [p for p in paces if p[key] <= want * (1 + 1e-9)]
        pace = max(fits, key=lambda p: p[key]) if fits else min(paces, key=lambda p: p[key])
        out = copy.copy(self)
        out.state = {**self.state, **pace["learned"]}
        return out

    # ---- learning and running ----
    def fit(self, view, samples: float | None = None, flops: float | None = None) -> "Policy":
        self.model = view.model
        self.target = {"samples": samples, "flops": flops, "max_tokens": view.max_tokens,
                       "mean_sample_tokens": view.mean_sample_tokens}
        if getattr(view, "program_answers", False):  # live use must run the samples' code too
            self.target["answers"] = "program"
        self.state = {}
        return self

    def run(self, sampler) -> None:
        raise NotImplementedError

    def answer(self, draws):
        return leader(draws, self.value("vote_cut"))[0]

    def confidence(self, draws, q_tokens: int, max_tokens: int) -> float:
        """The policy's belief that its answer is right: here the leader's share
        of the votes; a policy with a value model says better."""
        t = tally(draws, self.value("vote_cut"))
        return max((c for c, *_ in t.values()), default=0) / max(len(draws), 1)

    def check_state(self) -> None:
        """Raise ValueError when the learned state cannot run (a kind checks its own)."""

    @property
    def needs_prompt_signals(self) -> bool:
        """Whether the policy reads prefix entropy or prompt NLL (which a bank from an
        upstream without prompt log-probs lacks); the draw-only kinds do not."""
        return False

    # ---- JSON ----
    def to_dict(self) -> dict:
        return {"collm_policy": FORMAT, "kind": self.kind, "collm_version": __version__, "model": self.model,
                "params": self.params, "state": self.state, "target": self.target, "cv": self.cv}

    def save(self, path) -> None:
        d = self.to_dict()  # one top-level key a line: readable, and the weights stay compact
        text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}\n"
        try:
            Path(path).write_text(text)
        except OSError as e:
            raise CollmError(f"cannot write the policy {path}: {e.strerror or e}") from None

    @classmethod
    def from_dict(cls, d: dict, source: str = "<policy>") -> "Policy":
        """A policy from its file's contents, every field checked."""
        if not isinstance(d, dict) or d.get("collm_policy") != FORMAT:
            raise CollmError(f"{source}: not a collm policy file (format {FORMAT})")
        try:
            f = PolicyFile.model_validate(d)
        except ValidationError as e:
            raise CollmError(f"{source}: malformed policy file ({describe_errors(e)})") from None
        if f.collm_version.split(".")[:2] != __version__.split(".")[:2]:
            raise CollmError(f"{source}: made by collm {f.collm_version or 'unknown'}, incompatible with collm "
                             f"{__version__}; calibrate it again")
        if f.kind not in POLICIES:
            raise CollmError(f"{source}: unknown policy kind {f.kind!r}; known: {', '.join(sorted(POLICIES))}")
        try:
            p = POLICIES[f.kind](**f.params)
        except CollmError as e:
            raise CollmError(f"{source}: {e}") from None
        p.model = f.model.model_dump(exclude_none=False)
        p.state, p.target, p.cv = f.state, f.target.model_dump(exclude_none=True), f.cv
        try:
            p.check_state()
        except (ValueError, TypeError, KeyError, IndexError, ValidationError) as e:
            why = describe_errors(e, "state") if isinstance(e, ValidationError) else str(e)
            raise CollmError(f"{source}: malformed policy state ({why}); calibrate it again") from None
        return p

    @classmethod
    def from_file(cls, path, model: dict | None = None) -> "Policy":
        """Read a policy file; with `model`, refuse a policy made for another model."""
        path = Path(path)
        p = cls.from_dict(read_json(path, "policy file"), str(path))
        if model is not None and not same_model(p.model, model):
            raise CollmError(f"{path}: this policy was calibrated for {describe_model(p.model)}, "
                             f"not for {describe_model(model)}; calibrate one with `collm calibrate`")
        return p


def same_model(a: dict, b: dict) -> bool:
    """By sha256 when both have one (a 16+ digit prefix is enough), else by name
    (case-insensitive) and, where both say it, the parameter count (a model
    behind an upstream server is known by its id and the size given)."""
    sa, sb = str(a.get("sha256") or "").lower(), str(b.get("sha256") or "").lower()
    if sa and sb:
        return min(len(sa), len(sb)) >= 16 and (sa.startswith(sb) or sb.startswith(sa))
    na, nb = str(a.get("name") or "").lower(), str(b.get("name") or "").lower()
    pa, pb = a.get("params") or 0, b.get("params") or 0
    return bool(na) and na == nb and (not pa or not pb or int(pa) == int(pb))


def describe_model(m: dict) -> str:
    """A model identity in a message: its name and the start of its sha256, else its parameter count."""
    sha = str(m.get("sha256") or "")[:12]
    what = sha or (f"{int(m['params']):,} params" if m.get("params") else "no sha256")
    return f"{m.get('name') or 'another model'} ({what})"
