"""Property tests: whatever the bank, policy and budget (at or above the
minimum), the FLOPs spent (estimators included) never exceed the budget,
every prompt gets its greedy pass (or first sample), and a seed fixes the
allocation."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collm.allocation import BankView, get_policy, replay
from collm.budget import minimum_flops
from collm.errors import CollmError
from collm.flops import inference_flops

from allocation_helpers import random_bank

KINDS = ["uniform", "early-stop", "schedule", "marginal"]
_fitted: dict = {}


def fitted(kind: str, bank_seed: int, view):
    key = (kind, bank_seed)
    if key not in _fitted:
        params = {"fit_seeds": 2} if kind == "marginal" else {}
        _fitted[key] = get_policy(kind, **params).fit(view)
    return _fitted[key]


def estimator_cost(view) -> float:
    """Worst case of the schedule's prefix-entropy signal (32 question tokens)."""
    return sum(inference_flops(view.params, min(32, len(q))) for q in view.q_entropy)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), bank_seed=st.integers(0, 5), seed=st.integers(0, 1000),
       extra=st.floats(0, 20), use_samples=st.booleans())
def test_budget_never_exceeded_and_every_prompt_answered(kind, bank_seed, seed, extra, use_samples):
    view = BankView(random_bank(bank_seed))
    pol = fitted(kind, bank_seed, view)
    P = len(view)
    least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens) / P
    if use_samples:
        budget = view.budget(samples=1 + extra)
    else:
        budget = view.budget(flops=least * (1 + extra / 4))
    r = replay(pol, view, seed, budget)
    s = r["sampler"]
    if budget.flops is not None:
        assert r["flops"].sum() <= budget.flops + 1e-6
    if budget.samples is not None:
        assert r["samples"].sum() <= budget.samples + 1e-9
    assert (r["samples"] >= 1).all()  # the minimum: one generation per prompt
    assert (r["estimator_flops"] <= r["flops"]).all()
    # replays are deterministic for a seed
    r2 = replay(pol, view, seed, budget)
    assert np.array_equal(r["samples"], r2["samples"]) and np.array_equal(r["correct"], r2["correct"])
    assert [len(d) for d in s.draws] == list(r["samples"].astype(int))


@settings(max_examples=30, deadline=None)
@given(bank_seed=st.integers(0, 5), frac=st.floats(0.0, 0.999))
def test_budgets_below_one_greedy_pass_are_refused(bank_seed, frac):
    view = BankView(random_bank(bank_seed))
    least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens) / len(view)
    with pytest.raises(CollmError, match="minimum"):
        view.budget(flops=least * frac)
    with pytest.raises(CollmError, match="minimum"):
        view.budget(samples=frac)


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_nonpositive_budgets_are_refused(bad):
    view = BankView(random_bank(0))
    with pytest.raises(CollmError, match="minimum"):
        view.budget(samples=bad)
    with pytest.raises(CollmError, match="minimum"):
        view.budget(flops=bad)


def test_a_sampler_refuses_what_does_not_fit():
    view = BankView(random_bank(1))
    least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens)
    s = view.sampler(0, view.budget(flops=least / len(view)))
    assert len(s.request(np.arange(s.P), 1, greedy=True)) == s.P
    # what is left cannot pay a worst-case sample for every prompt
    served = s.request(np.arange(s.P), 5)
    assert s.spent_flops <= least + 1e-6
    assert len(served) < s.P
