"""The real-reward-model table: majority vs weighted vs best-of-N by score on
100 MATH problems x 8 scored samples, checked against hand counts."""

from __future__ import annotations

import math

import pytest
from rm_table import grading_agreement, load_rm_rows, problem_accuracy, rm_table, to_markdown


@pytest.fixture(scope="module")
def rows():
    return load_rm_rows()


def test_majority_at_8_matches_a_hand_count(rows):
    by = {r["idx"]: r for r in rows}
    # read off the file by hand (answers in sample order):
    #  17: 6290000 x4 vs 6287000 x4, tie -> seen first: 6290000, right
    #  28: 11, 11, 4, 15, 4, 2, 3, 13: 11 and 4 tie at 2 -> 11 seen first, wrong (gold 4)
    #  54: 12.5 twice, the rest once -> 12.5, wrong (gold 25%)
    #  70: 19 x5, 31 x3 -> 19, wrong (gold 31)
    #  98: 50625 x4 -> right
    #   6: 3/8 x3, 5/16 x2 -> 3/8, right
    hand = {17: 1.0, 28: 0.0, 54: 0.0, 70: 0.0, 98: 1.0, 6: 1.0}
    for i, want in hand.items():
        assert problem_accuracy(by[i], "majority", 8) == want, i
    # the problems majority-of-8 gets wrong: those above, plus 3 (all say "4:30\text{p.m.}",
    # which the graders do not accept for \text{4:30 p.m.}), 72 (a spread of 9999s), 84 (all 40)
    # and 85 (64 x4 vs 80 x4, both wrong)
    wrong = [r["idx"] for r in rows if problem_accuracy(r, "majority", 8) == 0.0]
    assert wrong == [3, 28, 54, 70, 72, 84, 85]
    assert rm_table(rows, ns=(8,))["majority"][8] == pytest.approx(0.93)


def test_subsets_are_averaged_exactly(rows):
    r = next(x for x in rows if x["idx"] == 28)  # 2 of 8 samples right
    assert problem_accuracy(r, "majority", 1) == pytest.approx(2 / 8)
    # pairs: right when both are right, or the right one comes first in a split pair
    both = 1  # the one pair of the two right samples
    split = sum(1 for a in range(8) for b in range(a + 1, 8) if r["correct"][a] and not r["correct"][b])
    assert problem_accuracy(r, "majority", 2) == pytest.approx((both + split) / math.comb(8, 2))


def test_table_shape_and_reward_use(rows):
    t = rm_table(rows)
    assert t["majority"][1] == t["weighted"][1] == t["best"][1]  # one sample: nothing to choose
    for m in ("majority", "weighted", "best"):
        assert all(t[m][n] <= t["pass"][n] + 1e-12 for n in (1, 2, 4, 8))
    by = {r["idx"]: r for r in rows}
    assert problem_accuracy(by[72], "best", 8) == 1.0  # the one right sample has by far the top reward
    assert problem_accuracy(by[70], "best", 8) == 1.0 and problem_accuracy(by[70], "weighted", 8) == 0.0
    assert grading_agreement(rows) > 0.99
    md = to_markdown(t)
    assert md.count("\n") == 5 and "N = 8" in md
