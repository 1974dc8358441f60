"""Property tests: whatever the bank, policy and budget (at or above the
minimum), the FLOPs spent (estimators included) never exceed the budget,
every prompt gets its greedy pass (or first sample), and a seed fixes the
allocation.

The spend is recounted here from what the sampler served, without its own
meter: for each prompt touched, its prefill once (2 x params x
prompt_tokens, from the bank), 2 x params x the tokens of every draw it
received, and each estimator the policy read and was not refused, at its
true cost recomputed from the bank (prefix_entropy: the first k entries of
q_entropy; prompt_nll: all of q_nll). That recount must stay within the
budget, and agree with the meter. Half the banks have most samples run to
exactly max_tokens: there a draw costs its worst case, so any slack in the
meter shows up as an overspend.

Mutants of collm/samplers/base.py this file kills (each was applied to
the source, seen to fail these tests, and reverted):
    - Meter.charge pays nothing (estimators run free);
    - Meter.reserve with 10% slack (`flops > left * 1.1`);
    - a meter that undercounts in Sampler.request: FLOPs recorded from
      tokens - 1 per draw, or the prefill never charged;
and, in collm/allocation/schedule.py, the schedule reading its signals
without asking for the charge. The recount test alone kills each of them;
the meter test kills all but the admission slack. The examples are
derandomized, so that this holds on every run, not by luck.
"""

import numpy as np
import pytest
from allocation_helpers import random_bank
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collm.allocation import BankView, get_policy
from collm.budget import minimum_flops
from collm.errors import CollmError

KINDS = ["uniform", "early-stop", "schedule", "marginal"]
AT_MAX = 0.9  # share of samples at exactly max_tokens in the "long" banks
_fitted: dict = {}
_views: dict = {}


def view_of(bank_seed: int, long: bool) -> BankView:
    key = (bank_seed, long)
    if key not in _views:
        _views[key] = BankView(random_bank(bank_seed, at_max=AT_MAX if long else 0.0))
    return _views[key]


def fitted(kind: str, bank_seed: int, long: bool):
    key = (kind, bank_seed, long)
    if key not in _fitted:
        params = {"fit_seeds": 2} if kind == "marginal" else {}
        _fitted[key] = get_policy(kind, **params).fit(view_of(bank_seed, long))
    return _fitted[key]


class Witness:
    """Watches a sampler from outside its meter: the draws its engine side
    served each prompt, and the priced signals the policy read (name, k),
    less those whose charge the sampler refused (the policy then uses the
    signal's mean, and nothing ran)."""

    def __init__(self, sampler):
        self.served = [[] for _ in range(sampler.P)]
        self.signals: list[tuple[str, int]] = []
        generate, signal, charge = sampler._generate, sampler.signal, sampler.charge_estimator

        def spy_generate(idx, ks, greedy):
            out = generate(idx, ks, greedy)
            for j, ds in zip(idx, out):
                self.served[int(j)].extend(ds)
            return out

        def spy_signal(name, k=32):
            self.signals.append((name, k))
            return signal(name, k)

        def spy_charge(idx, flops):
            paid = charge(idx, flops)
            if not paid:
                self.signals.pop()
            return paid

        sampler._generate, sampler.signal, sampler.charge_estimator = spy_generate, spy_signal, spy_charge


def estimator_flops(bank, params: int, name: str, k: int) -> float:
    """What a prompt-level signal costs over the bank: a forward pass over
    the question tokens it reads."""
    if name == "prefix_entropy":
        tokens = sum(min(k, len(p.q_entropy)) for p in bank.problems)
    elif name == "prompt_nll":
        tokens = sum(len(p.q_nll) for p in bank.problems)
    else:  # q_tokens: tokenisation only
        tokens = 0
    return 2.0 * params * tokens


def recount(view: BankView, w: Witness) -> float:
    """The batch's FLOPs from what was served and read."""
    total = 0.0
    for p, ds in zip(view.bank.problems, w.served):
        if ds:
            total += 2.0 * view.params * (p.prompt_tokens + sum(d.tokens for d in ds))
    return total + sum(estimator_flops(view.bank, view.params, name, k) for name, k in w.signals)


def run_watched(pol, view: BankView, seed: int, budget):
    s = view.sampler(seed, budget)
    w = Witness(s)
    pol.run(s)
    return s, w


def make_budget(view: BankView, extra: float, use_samples: bool):
    if use_samples:
        return view.budget(samples=1 + extra)
    least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens) / len(view)
    return view.budget(flops=least * (1 + extra / 4))


CASES = dict(kind=st.sampled_from(KINDS), bank_seed=st.integers(0, 5), long=st.booleans(),
             seed=st.integers(0, 1000), extra=st.floats(0, 20), use_samples=st.booleans())


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES)
def test_recounted_spend_never_exceeds_the_budget(kind, bank_seed, long, seed, extra, use_samples):
    view = view_of(bank_seed, long)
    budget = make_budget(view, extra, use_samples)
    s, w = run_watched(fitted(kind, bank_seed, long), view, seed, budget)
    if budget.flops is not None:
        assert recount(view, w) <= budget.flops * (1 + 1e-12)
    if budget.samples is not None:
        assert sum(len(ds) for ds in w.served) <= budget.samples + 1e-9


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES)
def test_meter_agrees_with_the_recount_and_every_prompt_is_answered(kind, bank_seed, long, seed, extra, use_samples):
    view = view_of(bank_seed, long)
    budget = make_budget(view, extra, use_samples)
    pol = fitted(kind, bank_seed, long)
    s, w = run_watched(pol, view, seed, budget)
    assert s.spent_flops == pytest.approx(recount(view, w), rel=1e-9)
    assert [len(ds) for ds in w.served] == list(s.gens) == [len(ds) for ds in s.draws]
    assert (s.gens >= 1).all()  # the minimum: one generation per prompt
    # replays are deterministic for a seed
    s2, _ = run_watched(pol, view, seed, budget)
    assert np.array_equal(s.gens, s2.gens) and s.draws == s2.draws


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
