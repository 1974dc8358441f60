"""Allocation: how many generations each prompt gets under a budget.

    policy = get_policy("marginal").fit(BankView(bank), samples=8)
    policy.run(sampler)        # a bank replay or a live model (collm.samplers)
    policy.save("policy.json"); collm.policies.load_policy("policy.json", model=...)

Policies: uniform (best-of-N), schedule (N(d) from predicted difficulty),
early-stop (adaptive consistency), marginal (expected gain per FLOP), and
the thresholds ladder the server can run as a plan (collm.allocation.thresholds).
"""

from collm.allocation import early_stop, marginal, schedule, uniform  # noqa: F401  (register the policies)
from collm.allocation.base import POLICIES, Policy, get_policy
from collm.allocation.replay import BankView, replay
from collm.budget import Budget, make_budget

__all__ = ["POLICIES", "BankView", "Budget", "Policy", "get_policy", "make_budget", "replay"]
