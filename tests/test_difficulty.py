"""Difficulty signals and the learned predictor."""

from pathlib import Path

import numpy as np
import pytest
from allocation_helpers import random_bank
from scipy.stats import spearmanr

from collm.allocation import BankView
from collm.difficulty import LearnedDifficulty, fit_logistic, sigmoid, values
from collm.flops import inference_flops
from collm.samplers import Draw

SHARED = Path("/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl")


def test_logistic_fit_recovers_the_weights():
    rng = np.random.default_rng(0)
    X = np.concatenate([np.ones((4000, 1)), rng.normal(size=(4000, 2))], 1)
    w = np.array([-0.5, 2.0, -1.0])
    y = rng.random(4000) < sigmoid(X @ w)
    assert np.allclose(fit_logistic(X, y, l2=1e-3), w, atol=0.2)


def test_prefix_entropy_reads_the_first_k_question_tokens_and_reports_its_cost():
    view = BankView(random_bank(2))
    s = view.sampler(0)
    for k in (1, 4, 32):
        v, f = values(s, "prefix_entropy", k=k)
        for j, q in enumerate(view.q_entropy):
            assert v[j] == pytest.approx(np.mean(q[:k]))
            assert f[j] == inference_flops(view.params, min(k, len(q)))
    v, f = values(s, "q_tokens")
    assert (v == view.A["q_tokens"]).all() and not f.any()


def test_agreement_signals():
    class S:
        P = 1
        draws = [[Draw("3", 10, -1, False, True), Draw("3", 10, -1, False, False), Draw("4", 10, -1, False, False),
                  Draw("9", 50, -1, True, False)]]  # the last one was cut: it does not vote

    margin, _ = values(S, "leader_margin")
    ent, _ = values(S, "answer_entropy")
    nll, _ = values(S, "greedy_nll")
    assert margin[0] == pytest.approx((2 - 1) / 4)
    assert ent[0] == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))
    assert nll[0] == pytest.approx(0.1)


def test_learned_difficulty_round_trips():
    rng = np.random.default_rng(1)
    vals = {"a": rng.normal(size=200), "b": rng.normal(size=200)}
    pr = sigmoid(vals["a"] - vals["b"])
    m = LearnedDifficulty(["a", "b"]).fit(vals, pr)
    back = LearnedDifficulty.from_dict(m.to_dict())
    assert np.allclose(m.predict(vals), back.predict(vals))
    assert spearmanr(m.predict(vals), 1 - pr)[0] > 0.95


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared bank is not here")
def test_learned_difficulty_ranks_held_out_problems_on_the_shared_bank():
    from collm.bank import load_bank

    view = BankView(load_bank(SHARED))
    s = view.sampler(0)
    s.request(np.arange(s.P), 1, greedy=True)
    names = ["q_tokens", "prefix_entropy", "greedy_nll"]
    vals = {n: values(s, n)[0] for n in names}
    pr = view.A["ok"].mean(1)
    half = np.arange(s.P) < s.P // 2
    m = LearnedDifficulty(names).fit({n: v[half] for n, v in vals.items()}, pr[half])
    rho = spearmanr(m.predict({n: v[~half] for n, v in vals.items()}), -pr[~half])[0]
    assert rho > 0.3  # question length alone gives about 0.42 on the whole bank
