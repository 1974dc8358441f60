from collm.vote import best_score, majority, tally, weighted, winner


def test_majority_counts_and_ignores_no_answer():
    a, votes = majority(["3", None, "5", "3", None])
    assert a == "3" and votes == {"3": 2, "5": 1}


def test_majority_tie_goes_to_first_seen():
    assert majority(["5", "3", "3", "5"])[0] == "5"
    assert majority(["3", "5", "5", "3"])[0] == "3"


def test_no_votes():
    assert majority([None, None]) == (None, {})
    assert winner({}) is None


def test_weighted_sums_scores_per_answer():
    a, s = weighted(["1", "2", "2", "1", "1"], [0.9, 0.8, 0.7, 0.1, 0.1])
    assert s == {"1": 1.1, "2": 1.5} or abs(s["1"] - 1.1) < 1e-9
    assert a == "2"  # 1.5 beats 1.1 although "1" has more votes


def test_best_score_skips_unanswered():
    assert best_score([None, "4", "7"], [5.0, 0.2, 0.3]) == "7"
    assert best_score([None], [1.0]) is None


def test_tally_weights():
    assert tally(["a", "b", "a"], [1, 2, 3]) == {"a": 4.0, "b": 2.0}
