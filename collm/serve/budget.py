"""Per-request budget: which policy decides how many samples a request gets.

Two kinds of policy reach the server (resolve_policy reads either):

- a plan: anything with `budget_for(difficulty) -> int`. The server measures
  the question's difficulty first (one prefill), asks the plan for N, then
  runs best-of-N. The built-in plan is a difficulty ladder in JSON:

    {"kind": "thresholds", "thresholds": [0.9, 1.4], "budgets": [1, 4, 8]}

  difficulty < 0.9 -> 1 sample, < 1.4 -> 4, otherwise 8. Difficulty is the
  mean prefix entropy (nats) of the question's own tokens, the signal the
  shared sample banks record (q_entropy).

- a calibrated collm.allocation policy (uniform, schedule, early-stop,
  marginal): it runs the request itself, round by round
  (collm.allocation.live.answer_with_policy), with the server's cap on its
  generations (max_samples and a hard budget of that many).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path

from collm.errors import CollmError
from collm.types import PromptScore


def difficulty_of(score: PromptScore) -> float | None:
    """Mean next-token entropy over the question's tokens (None if there are none)."""
    ent = score.q_entropy
    return sum(ent) / len(ent) if ent else None


@dataclass
class ThresholdPolicy:
    thresholds: list[float]
    budgets: list[int]

    def __post_init__(self):
        if len(self.budgets) != len(self.thresholds) + 1:
            raise CollmError("a thresholds policy needs one more budget than thresholds")
        if any(b < 1 for b in self.budgets):
            raise CollmError("every budget must be at least 1 sample")
        if list(self.thresholds) != sorted(self.thresholds):
            raise CollmError("thresholds must be increasing")

    def budget_for(self, difficulty: float | None) -> int:
        if difficulty is None:  # not measured: the middle of the ladder
            return self.budgets[len(self.budgets) // 2]
        return self.budgets[bisect.bisect_right(self.thresholds, difficulty)]

    @property
    def needs_difficulty(self) -> bool:
        return len(set(self.budgets)) > 1

    def to_dict(self) -> dict:
        return {"kind": "thresholds", "thresholds": list(self.thresholds), "budgets": list(self.budgets)}


def resolve_policy(spec: str | None, backend=None, task: str | None = None):
    """The server's policy from --policy: "none" (or None) for the default N,
    "default" for the policy shipped for the backend's model (collm.allocation's
    uncalibrated fallback when there is none), or a JSON file: the thresholds
    form above, or any policy file collm.allocation writes (checked against the
    backend's model). With a task that runs the samples' code (NAME+program),
    "default" prefers the shipped policy calibrated on program answers."""
    if spec in (None, "", "none"):
        return None
    from collm.allocation.live import load_policy_for

    if spec == "default":
        return load_policy_for(backend, None, task)
    spec_json = _read(spec)
    if isinstance(spec_json, dict) and spec_json.get("kind") == "thresholds":
        return load_policy(spec)
    return load_policy_for(backend, spec)


def _read(path: str | Path):
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CollmError(f"policy file not found: {p}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CollmError(f"cannot read policy {p}: {e}") from None


def load_policy(path: str | Path) -> ThresholdPolicy:
    """A thresholds policy from JSON."""
    spec = _read(path)
    if not isinstance(spec, dict) or spec.get("kind") != "thresholds":
        raise CollmError(f"{path}: not a thresholds policy (kind must be \"thresholds\")")
    try:
        return ThresholdPolicy([float(x) for x in spec["thresholds"]], [int(x) for x in spec["budgets"]])
    except (KeyError, TypeError, ValueError) as e:
        raise CollmError(f"bad thresholds policy {path}: {e}") from None
