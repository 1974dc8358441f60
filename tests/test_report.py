"""`collm report`: a report built from the shared bank, and its parts
(fairness groups and flags, policy rows, histogram) on small hand-made cases."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from collm.bank import load_bank
from collm.bank.format import Bank, BankProblem, BankSample
from collm.cli import main
from collm.report import EnergyModel, build_report, sources, tables
from collm.report import fairness as fair
from collm.report.sources import Method

SHARED_BANK = Path(__file__).resolve().parents[2] / "shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
needs_bank = pytest.mark.skipif(not SHARED_BANK.is_file(), reason="the shared bank is not on this machine")


def toy_problem(i, gold, answers, greedy, q_tokens=10, prompt=100, n=50):
    s = lambda a: {"a": a, "ok": a == gold, "n": n, "lp": -1.0}  # noqa: E731
    return {"i": i, "gold": gold, "prompt_tokens": prompt, "q_tokens": q_tokens, "q_entropy": [1.0] * q_tokens,
            "q_nll": [1.0] * q_tokens, "greedy": s(greedy), "samples": [s(a) for a in answers]}


@pytest.fixture
def toy_bank(tmp_path):
    header = {"collm_bank": 1, "model": {"name": "toy", "params": 1000}, "dataset": "gsm8k", "split": "test",
              "sampling": {"k": 4, "temperature": 0.7}}
    rows = [toy_problem(0, 1.0, [1.0, 1.0, 1.0, 2.0], 1.0, q_tokens=5),
            toy_problem(1, 1.0, [1.0, 2.0, 2.0, 3.0], 2.0, q_tokens=8),
            toy_problem(2, 1.0, [2.0, 2.0, 2.0, 2.0], 1.0, q_tokens=12),
            toy_problem(3, 1.0, [3.0, 3.0, 3.0, 3.0], 3.0, q_tokens=20)]
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [header] + rows) + "\n")
    return load_bank(path)


def test_toy_report_numbers_by_hand(toy_bank, tmp_path):
    rep = build_report([toy_bank], out=tmp_path / "r", seeds=3)
    s = rep["sections"][0]
    rows = {r["method"]: r for r in s["comparison"]}
    assert list(rows) == ["Greedy", "Temp 0.7, N = 1", "Best-of-4 majority"]
    # greedy right on rows 0 and 2; cost 2 * 1000 * (100 + 50) per question
    assert rows["Greedy"]["accuracy"] == 0.5 and rows["Greedy"]["flops"] == 2 * 1000 * 150
    # majority of 4: row 0 right (3 of 4), row 1 wrong (2 beats 1), rows 2, 3 wrong -> 25%
    assert rows["Best-of-4 majority"]["accuracy"] == 0.25
    # 4 samples of 50 tokens share one 100-token prompt: 2 * 1000 * 300
    assert rows["Best-of-4 majority"]["flops"] == 2 * 1000 * 300 and rows["Best-of-4 majority"]["x_greedy"] == 2
    # one sample: whether each seed's first draw is right (rows 0 and 1 only can be)
    from collm.bank import draws

    ok = toy_bank.arrays()["ok"]
    first = [ok[np.arange(4), draws.orders(range(4), 4, seed)[:, 0]].mean() for seed in range(3)]
    assert rows["Temp 0.7, N = 1"]["accuracy"] == pytest.approx(np.mean(first))
    # and in expectation (3/4 + 1/4) / 4 = 0.25
    many = sources.uniform(toy_bank, 1000, [1], seeds=range(200))[1]
    assert many.accuracy == pytest.approx(0.25, abs=0.04)
    assert rows["Greedy"]["p50_s"] is None and not s["live_timings"]
    # energy follows the model given
    assert rows["Greedy"]["joules"] == pytest.approx(3e5 / EnergyModel().flop_per_joule)


def test_length_quartiles_partition_and_order():
    q = np.array([5, 9, 3, 7, 7, 7, 1, 12, 30, 2, 8, 4])
    groups = fair.length_quartiles(q)
    masks = [m for _, m in groups]
    assert sum(m.sum() for m in masks) == len(q) and not np.any(np.sum(masks, axis=0) > 1)
    maxes = [q[m].max() for m in masks]
    mins = [q[m].min() for m in masks]
    assert all(a < b for a, b in zip(maxes, mins[1:]))  # a length never straddles two groups
    assert groups[0][0].startswith("Q1: 1-")


def _method(name, correct, flops, samples=None, kind="policy"):
    correct, flops = np.asarray(correct, float), np.asarray(flops, float)
    mean_samples = 1.0 if samples is None else float(np.mean(samples))
    return Method(name, kind, float(correct.mean()), float(flops.mean()), mean_samples, correct, flops,
                  None if samples is None else np.asarray(samples, float))


def test_fairness_flags_less_compute_at_lower_accuracy():
    P = 400
    group_b = np.arange(P) >= 300  # 100 problems
    correct = np.where(group_b, 0.0, 0.6)  # group b: 0% vs a mean of 45%
    starved = _method("starved", correct, np.where(group_b, 1.0, 2.0))  # b gets 1 / 1.75 of the mean compute
    fed = _method("fed", correct, np.where(group_b, 4.0, 2.0))  # b gets more compute: not flagged
    rows = fair.group_rows([starved, fed], [("a", ~group_b), ("b", group_b)])
    b = rows[1]["methods"]
    assert b["starved"]["flagged"] and b["starved"]["compute_ratio"] == pytest.approx(1 / 1.75)
    assert not b["fed"]["flagged"]
    assert not rows[0]["methods"]["starved"]["flagged"]  # more compute and higher accuracy


def test_fairness_does_not_flag_a_small_gap():
    P = 400
    g = np.arange(P) >= 300
    # group accuracy 0.40 vs mean ~0.41: far within 2 standard errors of a 100-problem group
    correct = np.where(g, 0.40, 0.4133)
    m = _method("m", correct, np.where(g, 1.0, 2.0))
    assert not fair.group_rows([m], [("g", g)])[0]["methods"]["m"]["flagged"]


def test_math500_groups_by_subject_and_level():
    from collm.datasets import load_dataset

    probs = load_dataset("math500", "test", limit=30)
    s = BankSample(None, False, 1, 0.0)
    bank = Bank("math.jsonl", [BankProblem(p.id, p.gold, 10, 5 + p.id % 7, [], [], s, [s]) for p in probs],
                {"dataset": "math500"})
    g = fair.groupings(bank, sources.dataset_of(bank))
    assert set(g) == {"subject", "level", "question length"}
    for key in ("subject", "level"):
        assert sum(m.sum() for _, m in g[key]) == 30
        for label, m in g[key]:
            assert all(str(probs[j].meta[key]) == label for j in np.nonzero(m)[0])
    assert [lab for lab, _ in g["level"]] == sorted((lab for lab, _ in g["level"]), key=int)


def test_policy_rows_histogram_and_bins(toy_bank):
    # a policy report as collm.allocation.evaluate gives it, with per-problem rows over 2 seeds
    rep = {"name": "adaptive", "accuracy": 0.5, "samples": 2.0, "flops": 123.0, "estimator_flops": 7.0,
           "per_problem": {"correct": [[1, 0, 1, 0], [1, 0, 1, 0]], "samples": [[1, 3, 4, 0], [1, 3, 4, 0]],
                           "flops": [[100, 130, 140, 122], [100, 130, 140, 122]]}}
    m = sources.policy_method(toy_bank, rep)
    # flops come with the estimators' share included, as collm.allocation reports them
    assert m.name == "collm: adaptive" and m.flops == 123.0 and m.extra["estimator_flops"] == 7.0
    assert m.problem_flops.tolist() == [100, 130, 140, 122] and m.accuracy == 0.5
    hist = tables.histogram([m], 4)
    assert hist["collm: adaptive"] == [2, 2, 0, 2, 2]
    levels = np.array([1, 1, 2, 2])
    rows = tables.difficulty([m], levels, np.array([0.9, 0.8, 0.1, 0.0]))
    assert rows[0]["methods"]["collm: adaptive"] == {"accuracy": 0.5, "samples": 2.0, "flops": 115.0}


def test_policy_without_per_problem_rows_is_aggregate_only(toy_bank, tmp_path):
    m = sources.policy_method(toy_bank, {"accuracy": 0.3, "samples": 2.5, "flops": 1e5})
    assert m.problem_samples is None and np.isnan(m.correct).all()
    sec, _ = __import__("collm.report.build", fromlist=["x"]).bank_section(toy_bank, seeds=2, policy_methods=[m])
    assert any("no per-problem allocation" in n for n in sec["notes"])
    assert all("collm: policy" not in r["methods"] for r in sec["difficulty"])
    assert sec["comparison"][-1]["accuracy"] == 0.3


@needs_bank
def test_report_from_shared_bank(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["report", "--bank", str(SHARED_BANK), "--out", str(out), "--seeds", "20",
                 "--grid-gco2-per-kwh", "100"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.json", "report.html", "gsm8k_accuracy_vs_compute.png",
            "gsm8k_samples_histogram.png", "gsm8k_difficulty.png"} <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rep = json.loads((out / "report.json").read_text())
    s = rep["sections"][0]
    assert s["dataset"] == "gsm8k" and s["problems"] == 640 and s["params"] == 494_032_768
    rows = {r["method"]: r for r in s["comparison"]}
    # the seed's published figures: greedy 27.8%, maj@1 0.211, maj@32 0.403 over 20 seeds
    assert rows["Greedy"]["accuracy"] == pytest.approx(0.278125)
    assert rows["Temp 0.8, N = 1"]["accuracy"] == pytest.approx(0.211, abs=5e-4)
    assert rows["Best-of-32 majority"]["accuracy"] == pytest.approx(0.403, abs=5e-4)
    A = load_bank(SHARED_BANK).arrays()
    assert rows["Greedy"]["flops"] == pytest.approx(2 * 494_032_768 * (A["prompt_tokens"] + A["greedy_n"]).mean())
    assert rows["Best-of-32 majority"]["flops"] == pytest.approx(
        2 * 494_032_768 * (A["prompt_tokens"] + A["ntok"].sum(axis=1)).mean())
    assert rows["Greedy"]["x_greedy"] == 1
    # energy settings from the command line
    assert rep["energy"]["grid_gco2_per_kwh"] == 100
    assert rows["Greedy"]["mg_co2e"] == pytest.approx(1000 * rows["Greedy"]["joules"] / 3.6e6 * 100)
    # difficulty bins and fairness groups cover every problem once
    assert sum(b["n"] for b in s["difficulty"]) == 640
    assert sum(g["n"] for g in s["fairness"]["groupings"]["question length"]) == 640
    assert [p["k"] for p in s["uniform_curve"]] == [1, 2, 4, 8, 16, 32]

    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(?!data:)', html), "the page must not load anything"
    assert "<script" not in html and "http://" not in html and "https://" not in html
    md = (out / "report.md").read_text()
    assert "| Greedy | 27.8%" in md and "n/a (replayed)" in md and "## Energy and emissions" in md
    assert "Best-of-32 majority" in capsys.readouterr().out


@pytest.mark.parametrize("extra,msg", [
    (["--bank", "/nonexistent/bank.jsonl"], "bank file not found"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--flop-per-joule", "0"], "--flop-per-joule must be a positive number"),
    (["--policy", "/nonexistent/policy.json"], "policy file not found"),
    (["--dataset", "nope"], "unknown dataset"),
])
def test_report_bad_input_exits_2(toy_bank, tmp_path, extra, msg, capsys):
    argv = ["report", "--out", str(tmp_path / "r")] + extra
    if "--bank" not in extra:
        argv += ["--bank", toy_bank.path]
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_report_needs_model_params_when_unknown(tmp_path, capsys):
    path = tmp_path / "noheader.jsonl"
    path.write_text(json.dumps(toy_problem(0, 1.0, [1.0, 2.0], 1.0)) + "\n")
    assert main(["report", "--bank", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "--model-params" in capsys.readouterr().err
    assert main(["report", "--bank", str(path), "--out", str(tmp_path / "r"), "--model-params", "1000",
                 "--seeds", "2"]) == 0


def test_out_must_be_a_folder(toy_bank, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["report", "--bank", toy_bank.path, "--out", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err


@needs_bank
def test_uniform_policy_row_matches_the_bank_replay(tmp_path):
    """A collm uniform-8 policy replayed through the allocation code must give
    exactly the report's own majority-of-8 replay: same draws, same votes."""
    from collm.allocation import BankView, get_policy
    from collm.report.build import bank_section

    bank = load_bank(SHARED_BANK)
    path = tmp_path / "uniform8.json"
    get_policy("uniform").fit(BankView(bank), samples=8).save(path)
    sec, methods = bank_section(bank, [str(path)], seeds=3)
    pol = methods[-1]
    assert pol.kind == "policy" and pol.name == "collm: uniform8"
    ref = sources.uniform(bank, bank.params, [8], range(3))[8]
    assert pol.accuracy == pytest.approx(ref.accuracy)
    assert pol.flops == pytest.approx(ref.flops)
    assert np.allclose(pol.correct, ref.correct) and np.all(pol.problem_samples == 8)
    assert sec["histogram"]["collm: uniform8"][8] == 3 * 640


def test_one_section_per_bank(toy_bank, tmp_path):
    rep = build_report([toy_bank, toy_bank], out=tmp_path / "r", seeds=2)
    assert [s["slug"] for s in rep["sections"]] == ["gsm8k", "gsm8k_2"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 6
    assert len(list((tmp_path / "r").glob("*.png"))) == 6


@needs_bank
def test_a_policy_its_code_cannot_run_is_a_clear_error(tmp_path, capsys):
    from collm.allocation import BankView, get_policy

    bank = load_bank(SHARED_BANK)
    path = tmp_path / "broken.json"
    get_policy("uniform").fit(BankView(bank), samples=4).save(path)
    d = json.loads(path.read_text())
    d["params"]["n"] = "four"  # a state this code cannot use
    path.write_text(json.dumps(d))
    code = main(["report", "--bank", str(SHARED_BANK), "--policy", str(path), "--out", str(tmp_path / "r"),
                 "--seeds", "1"])
    assert code == 2
    assert "could not be replayed" in capsys.readouterr().err
