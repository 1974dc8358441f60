"""Allocation: how many generations each prompt gets under a budget.

    policy = get_policy("marginal").fit(BankView(bank), samples=8)
    policy.run(sampler)        # a BankSampler (replay) or LiveSampler (backend)
    policy.save("policy.json"); load_policy("policy.json", model=...)

Policies: uniform (best-of-N), schedule (N(d) from predicted difficulty),
early-stop (adaptive consistency), marginal (expected gain per FLOP).
"""

from collm.allocation import early_stop, marginal, schedule, uniform  # noqa: F401  (register the policies)
from collm.allocation.base import POLICIES, Policy, get_policy, load_policy
from collm.allocation.budget import Budget, make_budget
from collm.allocation.replay import BankView, replay

__all__ = ["POLICIES", "BankView", "Budget", "Policy", "get_policy", "load_policy", "make_budget", "replay"]
