"""The planner's arithmetic against cases worked out by hand."""

import json
import math
from pathlib import Path

import pytest

from collm.cli import main
from collm.errors import CollmError
from collm.plan import (
    MatchedPlan,
    chinchilla_optimal,
    chinchilla_tokens,
    flops_matched_samples,
    parse_quantity,
    samples_with_prefix_sharing,
)

SHARED_BANK = Path(__file__).resolve().parents[2] / "shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"


def test_matched_samples_training_dominated():
    # P = 1B, Q = 14B (M = 14), D = 1T, DI = 100B (R = 0.1)
    # large: 6*14e9*1e12 + 2*14e9*1e11 = 8.4e22 + 2.8e21 = 8.68e22
    # small pretraining: 6*1e9*1e12 = 6e21 -> 8.08e22 left; one sample over DI: 2*1e9*1e11 = 2e20
    # k = 8.08e22 / 2e20 = 404 = M + 3(M-1)/R = 14 + 390
    p = flops_matched_samples(1e9, 14e9, 1e12, 1e11)
    assert p.ratio_m == 14 and p.ratio_r == pytest.approx(0.1)
    assert p.large_total_flops == pytest.approx(8.68e22)
    assert p.small_pretrain_flops == pytest.approx(6e21)
    assert p.small_inference_budget_flops == pytest.approx(8.08e22)
    assert p.samples == pytest.approx(404)


def test_matched_samples_inference_dominated_tends_to_m():
    # R = 100: k = 14 + 3*13/100 = 14.39; as R grows k -> M (the per-token price ratio)
    p = flops_matched_samples(1e9, 14e9, 1e12, 1e14)
    assert p.samples == pytest.approx(14.39)
    assert flops_matched_samples(1e9, 14e9, 1e12, 1e18).samples == pytest.approx(14, rel=1e-4)


def test_matched_samples_snell_formula_holds_generally():
    for P, Q, D, DI in [(3e8, 7e9, 2e12, 5e11), (1e9, 1.1e9, 1e11, 1e13), (5e8, 7.6e9, 5.5e12, 1e12)]:
        p = flops_matched_samples(P, Q, D, DI)
        M, R = Q / P, DI / D
        assert p.samples == pytest.approx(M + 3 * (M - 1) / R)
        # the budgets really match: small pretraining + k samples == large total
        assert 6 * P * D + 2 * P * DI * p.samples == pytest.approx(6 * Q * D + 2 * Q * DI)


def test_matched_samples_large_model_pretrained_longer():
    # P=1, Q=2, D=10, D_L=20, DI=5: large 6*2*20 + 2*2*5 = 260; small pretraining 60;
    # budget 200 over 2*1*5 = 10 per sample -> k = 20 (with D_L = D it would be 2 + 3*1/0.5 = 8)
    assert flops_matched_samples(1, 2, 10, 5, large_pretrain_tokens=20).samples == pytest.approx(20)
    assert flops_matched_samples(1, 2, 10, 5).samples == pytest.approx(8)


def test_matched_rejects_bad_inputs():
    with pytest.raises(CollmError, match="larger"):
        flops_matched_samples(2e9, 1e9, 1e12, 1e11)
    with pytest.raises(CollmError, match="positive"):
        flops_matched_samples(1e9, 2e9, 0, 1e11)
    with pytest.raises(CollmError, match="no inference budget"):
        # large pretrained on 1 token: 6*2*1 + 2*2*1 = 16 < small pretraining 6*1*100 = 600
        flops_matched_samples(1, 2, 100, 1, large_pretrain_tokens=1)


def test_prefix_sharing_converts_whole_queries_into_completions():
    # 10 queries of 100 prompt + 300 completion tokens = 4000 tokens;
    # one 100-token prompt prefilled once leaves 3900 -> 13 completions of 300
    assert samples_with_prefix_sharing(10, 100, 300) == pytest.approx(13)
    assert samples_with_prefix_sharing(1, 100, 300) == pytest.approx(1)


def test_chinchilla_by_hand():
    # C = 1.2e21: N = sqrt(1.2e21 / 120) = sqrt(1e19) = 3.162e9, D = 20 N = 6.325e10
    c = chinchilla_optimal(1.2e21)
    assert c.params == pytest.approx(math.sqrt(1e19))
    assert c.tokens == pytest.approx(20 * math.sqrt(1e19))
    assert 6 * c.params * c.tokens == pytest.approx(1.2e21)
    # Chinchilla itself: 70B on 1.4T tokens is C = 5.88e23, and sizing that budget gives 70B back
    assert chinchilla_optimal(6 * 70e9 * 1.4e12).params == pytest.approx(70e9)
    # N_opt grows as C^0.5: 4x the compute, 2x the model
    assert chinchilla_optimal(4.8e21).params == pytest.approx(2 * c.params)
    assert chinchilla_tokens(1e9) == 2e10


@pytest.mark.parametrize("text,value", [("494032768", 494032768), ("494_032_768", 494032768), ("0.5B", 5e8),
                                        ("7b", 7e9), ("1.4T", 1.4e12), ("3e11", 3e11), ("12k", 12e3),
                                        ("135M", 135e6), ("1,000", 1000)])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1Q", "-5", "0", "1.2.3B", "nan"])
def test_parse_quantity_rejects(text):
    with pytest.raises(CollmError):
        parse_quantity(text, "--x")


def test_cli_plan_text_and_json(capsys):
    args = ["plan", "--small-params", "1B", "--large-params", "14B", "--pretrain-tokens", "1T",
            "--inference-tokens", "100B"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "k = 404 samples per question" in out and "R = DI/D = 0.1" in out and "M = Q/P = 14" in out
    assert main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["matched"]["samples"] == pytest.approx(404)
    assert main(["plan", "--compute", "1.2e21", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chinchilla"]["params"] == pytest.approx(math.sqrt(1e19))


@pytest.mark.parametrize("argv,msg", [
    (["plan"], "give --small-params"),
    (["plan", "--small-params", "1B"], "also needs --large-params, --pretrain-tokens, --inference-tokens"),
    (["plan", "--small-params", "1B", "--large-params", "0.5B", "--pretrain-tokens", "1T", "--inference-tokens", "1T"],
     "must be larger"),
    (["plan", "--small-params", "one", "--large-params", "2B", "--pretrain-tokens", "1T", "--inference-tokens", "1T"],
     "cannot read 'one'"),
    (["plan", "--compute", "1e21", "--target-accuracy", "0.5"], "need --bank"),
])
def test_cli_plan_bad_input_exits_2(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


needs_bank = pytest.mark.skipif(not SHARED_BANK.is_file(), reason="the shared bank is not on this machine")


@needs_bank
def test_bank_check_budget_on_shared_bank(capsys):
    from collm.bank import load_bank
    from collm.bank.evaluate import uniform_curve
    from collm.plan import bank_check

    bank = load_bank(SHARED_BANK)
    P = 494_032_768
    # M = 16, R = 10: k = 16 + 3*15/10 = 20.5 samples per question
    plan = flops_matched_samples(P, 16 * P, 1e12, 1e13)
    assert plan.samples == pytest.approx(20.5)
    chk = bank_check(bank, plan, target=0.38, seeds=5)
    A = bank.arrays()
    t = (A["prompt_tokens"] + A["greedy_n"]).mean()
    assert chk["budget_flops_per_question"] == pytest.approx(20.5 * 2 * P * t)
    best = chk["candidates"][1]
    n = int(best["samples"])
    # the best uniform majority within budget: it fits, and no n that fits does better
    curve = uniform_curve(bank, range(1, bank.k + 1), seeds=5, params=P)
    assert curve[n]["flops"] <= chk["budget_flops_per_question"] < curve[bank.k]["flops"]
    fits = [v["accuracy"] for v in curve.values() if v["flops"] <= chk["budget_flops_per_question"]]
    assert best["accuracy"] == pytest.approx(max(fits))
    assert chk["candidates"][0]["method"] == "Greedy" and chk["candidates"][0]["reaches_target"] is False
    assert chk["reaches_target"] == any(c["reaches_target"] for c in chk["candidates"])


@needs_bank
def test_cli_plan_with_bank(capsys):
    code = main(["plan", "--small-params", "494032768", "--large-params", "7.6B", "--pretrain-tokens", "5.5T",
                 "--inference-tokens", "55T", "--bank", str(SHARED_BANK), "--target-accuracy", "38%", "--seeds", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Bank check" in out and "target 38.0%" in out


def test_plan_dataclass_round_trips_to_dict():
    p = flops_matched_samples(1e9, 2e9, 1e12, 1e12)
    assert MatchedPlan(**p.to_dict()) == p


@needs_bank
def test_bank_check_policy_fits_or_not(tmp_path):
    """A uniform-8 policy costs what majority-of-8 costs: within a budget of
    20.5 samples per question, over a budget of 4."""
    from collm.allocation import BankView, get_policy
    from collm.bank import load_bank
    from collm.bank.evaluate import uniform_curve
    from collm.plan import bank_check

    bank = load_bank(SHARED_BANK)
    P = bank.params
    path = tmp_path / "u8.json"
    get_policy("uniform").fit(BankView(bank), samples=8).save(path)
    ref = uniform_curve(bank, [8], seeds=2, params=P)[8]
    wide = bank_check(bank, flops_matched_samples(P, 16 * P, 1e12, 1e13), [str(path)], target=0.30, seeds=2)
    pol = wide["candidates"][-1]
    assert pol["flops"] == pytest.approx(ref["flops"]) and pol["accuracy"] == pytest.approx(ref["accuracy"])
    assert pol["within_budget"] and pol["reaches_target"] == (ref["accuracy"] >= 0.30)
    # M = 2, R = 1: k = 2 + 3 = 5 samples per question < 8
    tight = bank_check(bank, flops_matched_samples(P, 2 * P, 1e12, 1e12), [str(path)], target=0.30, seeds=2)
    assert not tight["candidates"][-1]["within_budget"] and tight["candidates"][-1]["reaches_target"] is False
