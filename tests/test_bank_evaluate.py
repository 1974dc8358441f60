"""Bank evaluation on small synthetic banks whose answers are computed by hand."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collm.bank import load_bank, oracle
from collm.bank.evaluate import (
    cost_to_reach,
    difficulty_bins,
    difficulty_levels,
    expected_uniform,
    greedy_accuracy,
    greedy_point,
    oracle_frontier,
    pass_at_k,
    uniform_curve,
)
from collm.errors import CollmError
from collm.vote import majority


def problem(i, gold, answers, greedy=None, n=10, prompt=100):
    s = lambda a: {"a": a, "ok": a is not None and a == gold, "n": n, "lp": -1.0}  # noqa: E731
    return {"i": i, "gold": gold, "prompt_tokens": prompt, "q_tokens": 3, "q_entropy": [1.0, 2.0, 3.0],
            "q_nll": [1.0, 1.0, 1.0], "greedy": s(greedy), "samples": [s(a) for a in answers]}


def write(path, problems, header=None):
    lines = ([json.dumps(header)] if header else []) + [json.dumps(p) for p in problems]
    path.write_text("\n".join(lines) + "\n")
    return load_bank(path)


HEADER = {"collm_bank": 1, "model": {"name": "toy", "sha256": "abc", "params": 1000}, "dataset": "gsm8k", "split": "test"}


@pytest.fixture
def bank(tmp_path):
    return write(tmp_path / "toy.jsonl", [
        problem(0, 5.0, [5.0, 5.0, 7.0], greedy=5.0),    # majority of 3 right, pass@1 2/3
        problem(1, 9.0, [None, None, 9.0], greedy=None),  # no-answer never votes: maj@3 right
        problem(2, 4.0, [3.0, 3.0, 4.0], greedy=4.0),     # majority of 3 wrong, pass@1 1/3
        problem(3, 1.0, [None, None, None], greedy=2.0),  # never answered: always wrong
    ], HEADER)


def test_majority_of_all_samples_is_order_free(bank):
    u = uniform_curve(bank, ks=(3,), seeds=range(5))
    assert u[3]["accuracy"] == pytest.approx(2 / 4)
    assert u[3]["samples"] == 3
    # FLOPs: 2 x 1000 x (100 prompt + 3 x 10 generated), the prompt counted once
    assert u[3]["flops"] == pytest.approx(2 * 1000 * 130)


def test_maj1_is_pass1_in_expectation(bank):
    # pass@1 per problem: 2/3, 1/3, 1/3, 0 -> mean 1/3
    u = uniform_curve(bank, ks=(1,), seeds=range(3000))
    assert u[1]["accuracy"] == pytest.approx(1 / 3, abs=0.01)
    assert u[1]["lo"] <= u[1]["accuracy"] <= u[1]["hi"]


def test_tie_goes_to_the_answer_drawn_first(tmp_path):
    b = write(tmp_path / "tie.jsonl", [problem(7, 4.0, [3.0, 4.0])])
    for s in range(6):
        first = np.random.default_rng([s, 7]).permutation(2)[0]
        u = uniform_curve(b, ks=(2,), seeds=[s])
        assert u[2]["accuracy"] == (1.0 if first == 1 else 0.0)


def test_pass_at_k_unbiased(bank):
    p = pass_at_k(bank, ks=(1, 2, 3))
    # problem 0 (2 of 3 right): 2/3, 1, 1; problems 1 and 2 (1 of 3): 1/3, 2/3, 1; problem 3: 0
    assert p[1] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 4)
    assert p[2] == pytest.approx((1 + 2 / 3 + 2 / 3) / 4)
    assert p[3] == pytest.approx(3 / 4)


def test_greedy(bank):
    assert greedy_accuracy(bank) == 0.5
    g = greedy_point(bank)
    assert g["flops"] == pytest.approx(2 * 1000 * 110)


def test_difficulty_bins_easiest_first(bank):
    levels = difficulty_levels(bank, n_bins=2)
    # pass@1 2/3 (row 0) is easiest; 1/3 ties between rows 1 and 2 are broken by row
    assert list(levels) == [1, 1, 2, 2]
    bins = difficulty_bins(bank, n_bins=2, ks=(3,), seeds=range(2))
    assert [b["n"] for b in bins] == [2, 2]
    assert bins[0]["uniform"][3] == 1.0 and bins[1]["uniform"][3] == 0.0
    assert bins[0]["greedy"] == 0.5 and bins[1]["greedy"] == 0.5
    with pytest.raises(CollmError):
        difficulty_levels(bank, n_bins=9)


def test_sweep_by_hand():
    value = np.array([[0.2, 0.6, 0.7], [0.1, 0.2, 0.8]])
    cost = np.array([[1.0, 2, 3], [1.0, 2, 3]])
    r = oracle.sweep(value, cost)
    # problem 1's middle point lies under its hull (one step of slope 0.35);
    # problem 0 has slopes 0.4 then 0.1: taken as 0.4, 0.35, 0.1
    assert r["cost"] == pytest.approx([1, 1.5, 2.5, 3])
    assert r["value"] == pytest.approx([0.15, 0.35, 0.7, 0.75])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=3))
def test_sweep_bounds_every_allocation(rows):
    """Every allocation lies on or under the frontier, and the frontier's
    vertices are allocations (brute force over all of them)."""
    value = np.array(rows)
    cost = np.tile([1.0, 2.0, 3.0], (len(rows), 1))
    r = oracle.sweep(value, cost)
    P = len(rows)
    points = {(round(sum(cost[p, j] for p, j in enumerate(a)) / P, 9), sum(value[p, j] for p, j in enumerate(a)) / P)
              for a in itertools.product(range(3), repeat=P)}
    for c, v in points:
        assert v <= np.interp(c, r["cost"], r["value"], right=r["value"][-1]) + 1e-9
    for c, v in zip(r["cost"], r["value"]):
        assert any(abs(c - pc) < 1e-9 and abs(v - pv) < 1e-9 for pc, pv in points)


def test_expected_majority_matches_every_permutation():
    """The exact expectation equals brute force over all K! draw orders."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        K = int(rng.integers(1, 7))
        ans = rng.integers(-1, 3, size=K)
        ok = ans == 0
        brute = np.zeros(K)
        perms = list(itertools.permutations(range(K)))
        for perm in perms:
            for n in range(1, K + 1):
                a, _ = majority([None if ans[j] < 0 else str(ans[j]) for j in perm[:n]])
                brute[n - 1] += a == "0"
        assert oracle.expected_majority(ans, ok) == pytest.approx(brute / len(perms), abs=1e-12)


def test_oracle_frontier_dominates_uniform(bank):
    orc = oracle_frontier(bank)
    uni = expected_uniform(bank, ks=(1, 2, 3))
    # maj@1 = pass@1 exactly: (2/3 + 1/3 + 1/3 + 0) / 4
    assert orc[0]["samples"] == 1 and orc[0]["accuracy"] == pytest.approx(uni[1]) == pytest.approx(1 / 3)
    for k, u in uni.items():
        assert np.interp(k, [o["samples"] for o in orc], [o["accuracy"] for o in orc],
                         right=orc[-1]["accuracy"]) >= u - 1e-9
    # the top: problems 0 and 1 always right with 3 samples; problem 2 best with 1 (1/3; maj@2 is 1/3 too,
    # maj@3 is 0); problem 3 never right, left at 1 sample
    assert orc[-1]["accuracy"] == pytest.approx((1 + 1 + 1 / 3) / 4)
    assert orc[-1]["samples"] == pytest.approx((3 + 3 + 1 + 1) / 4)
    assert cost_to_reach(orc, 2.0) is None
    assert cost_to_reach(orc, 0.0) == 1.0


def test_asking_beyond_the_bank(bank):
    with pytest.raises(CollmError, match="holds 3"):
        uniform_curve(bank, ks=(8,), seeds=range(2))
