"""`collm eval` on the shared bank (the numbers the issue asks for) and its
errors on bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collm.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
needs_shared = pytest.mark.skipif(not SHARED.is_file(), reason="the shared bank is not here")

LINE = {"i": 0, "gold": 3.0, "prompt_tokens": 50, "q_tokens": 2, "q_entropy": [1.0, 2.0], "q_nll": [0.5, 0.5],
        "greedy": {"a": 3.0, "ok": True, "n": 5, "lp": -1.0},
        "samples": [{"a": 3.0, "ok": True, "n": 5, "lp": -1.0}, {"a": 4.0, "ok": False, "n": 9, "lp": -2.0}]}


@needs_shared
def test_eval_json_on_shared_bank(capsys, tmp_path):
    png = tmp_path / "plot.png"
    assert main(["eval", "--bank", str(SHARED), "--json", "--plot", str(png)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["greedy"] == pytest.approx(0.278, abs=0.0005)
    assert res["uniform"]["1"] == pytest.approx(0.213, abs=0.015)
    assert res["uniform"]["8"] == pytest.approx(0.336, abs=0.015)
    assert res["uniform"]["32"] == pytest.approx(0.403, abs=0.015)
    assert set(res["uniform"]) == {"1", "2", "4", "8", "16", "32"}
    assert res["pass_at_k"]["32"] == pytest.approx(469 / 640)  # problems solved at least once
    bins = res["difficulty_bins"]
    assert [b["n"] for b in bins] == [128] * 5
    assert bins[0]["pass1"] > bins[-1]["pass1"]  # bin 1 is the easiest
    orc = res["oracle"]
    assert orc[0]["samples"] == pytest.approx(1.0)
    assert all(a["samples"] <= b["samples"] and a["accuracy"] <= b["accuracy"] for a, b in zip(orc, orc[1:]))
    assert orc[-1]["accuracy"] > res["uniform"]["32"]  # an upper bound for every uniform budget
    assert res["params"] == 494_032_768
    assert res["uniform_curve"]["1"]["flops"] == pytest.approx(2 * 494_032_768 * res["uniform_curve"]["1"]["tokens"])
    assert png.stat().st_size > 10_000


@needs_shared
def test_eval_table_and_model_params(capsys):
    assert main(["eval", "--bank", str(SHARED), "--seeds", "2", "--model-params", "1000"]) == 0
    out = capsys.readouterr().out
    assert "greedy accuracy 0.278" in out and "oracle" in out and "difficulty bins" in out


@needs_shared
def test_policy_without_the_module_or_with_it(capsys, tmp_path):
    code = main(["eval", "--bank", str(SHARED), "--seeds", "1", "--policy", str(tmp_path / "p.json")])
    assert code == 2  # policies unavailable, or the policy file missing: a clean error either way
    assert "error:" in capsys.readouterr().err


def test_bad_bank_exits_2_naming_file_and_line(tmp_path):
    p = tmp_path / "cut.jsonl"
    p.write_text(json.dumps(LINE) + "\n" + json.dumps(LINE)[:40])
    r = subprocess.run([sys.executable, "-m", "collm", "eval", "--bank", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{p}:2: truncated line" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "collm", "eval", "--bank", str(tmp_path / "none.jsonl")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "bank file not found" in r.stderr


def test_mixed_models_refused(tmp_path, capsys):
    paths = []
    for name in ("m1", "m2"):
        p = tmp_path / f"{name}.jsonl"
        h = {"collm_bank": 1, "model": {"name": name, "params": 10}, "dataset": "gsm8k", "split": "test"}
        line = {**LINE, "i": len(paths)}
        p.write_text(json.dumps(h) + "\n" + json.dumps(line) + "\n")
        paths.append(str(p))
    assert main(["eval", "--bank", paths[0], "--bank", paths[1]]) == 2
    assert "different models" in capsys.readouterr().err


def test_small_bank_keeps_ks_it_holds(tmp_path, capsys):
    p = tmp_path / "k2.jsonl"
    p.write_text(json.dumps(LINE) + "\n" + json.dumps({**LINE, "i": 1}) + "\n")
    assert main(["eval", "--bank", str(p), "--json", "--seeds", "3", "--bins", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["uniform"]) == {"1", "2"}
    # a 1-1 tie: the answer drawn first wins (the right one is sample 0)
    first_right = [np.random.default_rng([s, i]).permutation(2)[0] == 0 for s in range(3) for i in range(2)]
    assert res["uniform"]["2"] == pytest.approx(np.mean(first_right))
    assert res["greedy"] == 1.0
    assert main(["eval", "--bank", str(p), "--ks", "4"]) == 2


def bank_file(tmp_path, *lines, head=None, name="b.jsonl"):
    p = tmp_path / name
    head = head or {"collm_bank": 1, "model": {"name": "m", "params": 10}, "dataset": "gsm8k", "split": "test"}
    p.write_text("".join(json.dumps(x) + "\n" for x in (head, *lines)))
    return str(p)


@pytest.mark.parametrize("command", [
    ["eval", "--bank"],
    ["calibrate", "--policy", "uniform", "--budget", "2", "--out", "OUT/p.json", "--bank"],
    ["bank", "info"],
])
@pytest.mark.parametrize("head,line,match", [
    (None, {**LINE, "samples": [LINE["samples"][0], {**LINE["samples"][1], "ok": "false"}]},
     r":3: malformed sample \(samples\[1\]\.ok: must be true or false"),
    ({"collm_bank": 1, "model": {"name": "m", "params": "big"}}, LINE, r":1: malformed header \(model\.params"),
    ({"collm_bank": 1, "model": ["m"]}, LINE, r":1: malformed header \(model: must be a JSON object"),
])
def test_bad_banks_exit_2_with_the_line_not_a_traceback(tmp_path, capsys, command, head, line, match):
    p = bank_file(tmp_path, {**LINE, "i": 1}, line, head=head)
    assert main([c.replace("OUT", str(tmp_path)) for c in command] + [p]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {p}:") and "Traceback" not in err
    assert re.search(match, err)


@pytest.mark.parametrize("command", [
    ["eval", "--bins", "1", "--bank"],
    ["calibrate", "--policy", "uniform", "--budget", "1.5", "--out", "OUT/p.json", "--seeds", "1", "--bank"],
    ["bank", "info"],
    ["report", "--seeds", "1", "--out", "OUT/r", "--bank"],
])
def test_allow_ragged_reads_a_ragged_bank(tmp_path, capsys, command):
    command = [c.replace("OUT", str(tmp_path)) for c in command]
    p = bank_file(tmp_path, LINE, {**LINE, "i": 1}, {**LINE, "i": 2, "samples": LINE["samples"][:1]})
    assert main(command + [p]) == 2
    assert f"error: {p}:4: problem 2 has 1 sample where the first problem (line 2) has 2; --allow-ragged" in \
        capsys.readouterr().err
    assert main(command + [p, "--allow-ragged"]) == 0


def test_bank_info_of_a_ragged_bank_says_k_is_the_smallest(tmp_path, capsys):
    p = bank_file(tmp_path, LINE, {**LINE, "i": 1, "samples": LINE["samples"][:1]})
    assert main(["bank", "info", p, "--allow-ragged"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["problems"] == 2 and info["k"] == 1


def test_plan_takes_allow_ragged():
    from collm.cli import build_parser

    args = build_parser().parse_args(["plan", "--bank", "b.jsonl", "--allow-ragged"])
    assert args.allow_ragged


def test_calibrate_refuses_gsm8k_test_rows_kept_for_evaluation(tmp_path, capsys):
    out = str(tmp_path / "p.json")
    cmd = ["calibrate", "--policy", "uniform", "--budget", "1.5", "--seeds", "1", "--out", out, "--bank"]
    held_out = bank_file(tmp_path, {**LINE, "i": 1}, {**LINE, "i": 640}, name="test.jsonl")
    assert main(cmd + [held_out]) == 2
    assert "1 problems are GSM8K test rows >= 640 (from row 640)" in capsys.readouterr().err
    assert not Path(out).exists()
    train_head = {"collm_bank": 1, "model": {"name": "m", "params": 10}, "dataset": "gsm8k", "split": "train"}
    train = bank_file(tmp_path, {**LINE, "i": 1}, {**LINE, "i": 640}, head=train_head, name="train.jsonl")
    assert main(cmd + [train]) == 0 and Path(out).exists()
