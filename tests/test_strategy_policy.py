"""The per-bin strategy policy with predicted difficulty bins: the bin
predictor (pure logic on synthetic signals), the fixed cross-validation
split, the bank replay behind `collm eval --policy`, and, marked `model`,
`collm ask --policy` choosing a strategy per question on the real SmolLM2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from allocation_helpers import random_bank

from collm.difficulty.bins import DifficultyBins
from collm.errors import CollmError
from collm.strategies.select import StrategyPolicy, fit_strategy_policy


def _signals(rng, n):
    q = rng.integers(5, 200, n).astype(float)
    return {"q_tokens": q, "prefix_entropy": rng.random(n), "prompt_nll": rng.random(n)}


def test_bins_follow_the_predicted_difficulty_in_equal_shares_and_round_trip():
    rng = np.random.default_rng(0)
    vals = _signals(rng, 500)
    pass_rate = 1 / (1 + np.exp((vals["q_tokens"] - 100) / 20))  # longer questions are harder
    b = DifficultyBins().fit(vals, pass_rate)
    level = b.predict(vals)
    assert sorted(set(level)) == [1, 2, 3, 4, 5]
    assert all(abs((level == k).sum() - 100) <= 2 for k in range(1, 6))  # quantile edges: equal shares
    from scipy.stats import spearmanr

    assert spearmanr(level, vals["q_tokens"]).statistic > 0.95  # it follows the one signal that matters
    c = DifficultyBins.from_dict(json.loads(json.dumps(b.to_dict())))
    assert (c.predict(vals) == level).all()
    with pytest.raises(CollmError, match="needs generations"):
        DifficultyBins(signals=("q_tokens", "answer_entropy"))
    with pytest.raises(CollmError, match="malformed"):
        DifficultyBins.from_dict({**b.to_dict(), "edges": [0.5]})


def test_a_given_split_is_the_split_cross_validation_uses():
    # majority is right on the even problems, weighted on the odd ones: a split
    # that puts all even problems in fold 0 makes each fold pick the other's
    # winner, so the held-out accuracy is 0; a random split does better
    recs = [{"problem": p, "bin": 1, "budget": 4, "strategy": s, "settings": {}, "correct": (p % 2 == 0) == (s == "majority")}
            for p in range(40) for s in ("majority", "weighted")]
    by_parity = fit_strategy_policy(recs, fold_of_problem={p: p % 2 for p in range(40)})
    assert by_parity.cv["1/4"]["held_out_accuracy"] == 0.0
    assert fit_strategy_policy(recs).cv["1/4"]["held_out_accuracy"] > 0.0


def _policy(model, table=None, bins=None):
    rng = np.random.default_rng(1)
    vals = _signals(rng, 200)
    bins = bins or DifficultyBins().fit(vals, 1 / (1 + np.exp((vals["q_tokens"] - 100) / 20)))
    table = table or {b: {1: {"strategy": "majority", "settings": {}},
                          2: {"strategy": "majority" if b <= 2 else "weighted", "settings": {} if b <= 2 else {"verifier": "self-certainty"}}}
                      for b in range(1, 6)}
    return StrategyPolicy(table, {}, {}, bins, model)


def test_eval_replays_a_strategy_policy_on_a_bank(tmp_path, capsys):
    from collm.bank.format import problem_to_dict
    from collm.cli import main

    bank = random_bank(3, P=12, K=4)
    bank_path = tmp_path / "bank.jsonl"
    bank_path.write_text(json.dumps({"collm_bank": 1, **bank.header}) + "\n"
                         + "".join(json.dumps(problem_to_dict(p)) + "\n" for p in bank.problems))
    pol_path = tmp_path / "pol.json"
    _policy({"name": "toy"}).save(pol_path)
    assert main(["eval", "--bank", str(bank_path), "--policy", str(pol_path), "--seeds", "3", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)["policy"]
    assert rep["kind"] == "strategy" and [r["budget"] for r in rep["budgets"]] == [1, 2]
    r1, r2 = rep["budgets"]
    assert r1["accuracy"] == pytest.approx(r1["majority"])  # budget 1: majority everywhere
    assert sum(r2["choices"].values()) == 12 and r2["estimator_share"] > 0
    # the per-prompt choice: each problem's figure is majority's or weighted's
    assert min(r2["majority"], r2["weighted"]) - 1e-9 <= r2["accuracy"] <= max(r2["majority"], r2["weighted"]) + 1e-9
    # a strategy that needs new generations cannot be replayed: a clear error
    _policy({"name": "toy"}, table={b: {2: {"strategy": "beam", "settings": {"beam_width": 2}}} for b in range(1, 6)}).save(pol_path)
    assert main(["eval", "--bank", str(bank_path), "--policy", str(pol_path)]) == 2
    assert "cannot be replayed" in capsys.readouterr().err
    # one fitted for another model is refused
    _policy({"name": "another-model"}).save(pol_path)
    assert main(["eval", "--bank", str(bank_path), "--policy", str(pol_path)]) == 2
    assert "fitted for another-model" in capsys.readouterr().err


def test_the_shipped_strategy_policy_loads_and_says_how_it_was_made():
    from collm.policies import default_policy_path
    from collm.strategies.select import KEY

    qwen = {"name": "Qwen2.5-Coder-0.5B-Instruct", "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"}
    path = default_policy_path(qwen, KEY)
    assert path is not None and path.name.endswith(".strategies.json")
    assert default_policy_path(qwen).name == "qwen2.5-coder-0.5b.json"  # the allocation policy is another file
    pol = StrategyPolicy.from_file(path, model=qwen)
    assert pol.bins_model is not None and pol.bins == [1, 2, 3, 4, 5] and pol.budgets == [1, 2, 4, 8, 16, 32]
    assert "bench/strategies.py replay" in pol.meta["source"]
    assert all(v["held_out_accuracy"] is not None for v in pol.cv.values())


@pytest.mark.model
def test_ask_with_a_strategy_policy_picks_per_predicted_bin_on_the_real_model(tmp_path, capsys):
    from collm.backends import load_backend
    from collm.cli import main

    be = load_backend("smollm2-135m", "torch")
    model = be.identity()
    be.close()
    path = tmp_path / "smollm.strategies.json"
    _policy(model).save(path)
    rc = main(["ask", "What is 3 + 4?", "--model", "smollm2-135m", "--engine", "torch", "--policy", str(path),
               "--n", "2", "--max-tokens", "12", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["policy"] == "strategy" and d["n"] == 2 and d["difficulty_bin"] in range(1, 6)
    assert d["strategy"] == ("majority" if d["difficulty_bin"] <= 2 else "weighted")
    assert d["estimator_flops"] > 0 and d["usage"]["flops"] > d["estimator_flops"]
    # options the policy decides are refused, and so is the policy of another model
    assert main(["ask", "x", "--model", "smollm2-135m", "--engine", "torch", "--strategy", "auto", "--beam-width", "2"]) == 2
    assert "strategy policy" in capsys.readouterr().err
    assert main(["ask", "x", "--model", "smollm2-135m", "--engine", "torch", "--strategy", "auto"]) == 2
    assert "no strategy policy was fitted" in capsys.readouterr().err
