"""End to end with the real SmolLM2: `collm bank build` killed with SIGKILL
after its first problem, resumed, every problem found exactly once, then
replayed through `collm eval` and the replay backend."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collm.answers import get_task
from collm.backends.replay import ReplayBackend
from collm.bank import load_bank
from collm.bank.evaluate import replay
from collm.cli import main
from collm.datasets import load_dataset
from collm.prompts import Prompt
from collm.strategies import get_strategy
from collm.types import SamplingParams

ROOT = Path(__file__).resolve().parents[1]
BUILD = [sys.executable, "-m", "collm", "bank", "build", "--model", "smollm2-135m", "--engine", "torch",
         "--dataset", "gsm8k", "--offset", "5", "--limit", "3", "--k", "4", "--max-tokens", "24",
         "--batch-size", "1"]


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.model
def test_build_kill_resume_and_replay(tmp_path, capsys):
    out = tmp_path / "smol.jsonl"
    cmd = BUILD + ["--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while complete_lines(out) < 2:  # the header and the first problem
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no problem written in 300 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    first = load_bank(out, allow_partial_last_line=True)
    assert 1 <= len(first) < 3  # killed before the end; what was written survives

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(first)} already there" in r.stderr

    bank = load_bank(out)
    rows = [p.i for p in bank.problems]
    assert sorted(rows) == [5, 6, 7]  # each problem exactly once
    assert bank.k == 4 and bank.model["name"] == "smollm2-135m" and bank.params > 100_000_000
    sp = bank.header["sampling"]
    assert {k: sp[k] for k in ("k", "temperature", "top_p", "top_k", "max_tokens", "seed")} == \
        {"k": 4, "temperature": 0.8, "top_p": 1.0, "top_k": 50, "max_tokens": 24, "seed": 0}
    assert sp["streams"].startswith("per sample")
    for p in bank.problems:
        assert p.prompt_tokens > p.q_tokens == len(p.q_entropy) == len(p.q_nll) > 5
        assert all(0 < s.n <= 24 for s in p.samples + [p.greedy])
        assert all(s.a is None for s in p.samples if s.f == "length")

    assert main(["eval", "--bank", str(out), "--json", "--seeds", "4", "--bins", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["uniform"]) == {"1", "2", "4"} and res["problems"] == 3
    assert res["greedy"] == sum(p.greedy.ok for p in bank.problems) / 3

    task = get_task("gsm8k")
    problems = load_dataset("gsm8k", "test", 5, 3)
    by_row = {p.i: j for j, p in enumerate(bank.problems)}
    answers = get_strategy("majority").run(ReplayBackend(bank, seed=1), [Prompt(p.question, id=p.id) for p in problems],
                                           4, task, params=SamplingParams(top_k=0, max_tokens=512))
    cor, _ = replay(bank, [4], [1])
    assert [task.grade(a.answer, p.gold) for a, p in zip(answers, problems)] == \
        [bool(cor[0, by_row[p.id], 0]) for p in problems]


@pytest.mark.model
@pytest.mark.llamacpp
def test_a_resumed_build_draws_what_an_uninterrupted_one_draws(tmp_path):
    """Each problem's samples come from streams keyed by the problem's prompt
    (collm.backends.seeding) and are decoded in cells of their own, so a build
    killed mid-way and resumed, whose batches then hold other problems, writes
    the very samples an uninterrupted build writes."""
    pytest.importorskip("llama_cpp")
    cmd = [sys.executable, "-m", "collm", "bank", "build", "--model", "smollm2-135m", "--engine", "llamacpp",
           "--dataset", "gsm8k", "--offset", "20", "--limit", "5", "--k", "3", "--max-tokens", "20",
           "--batch-size", "2", "--keep-text", "--quiet"]
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    r = subprocess.run(cmd + ["--out", str(whole)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    # the first problem alone, then the rest: batches of other problems than the whole build's
    for limit in ("1", "5"):
        args = [a if a != "5" else limit for a in cmd]
        r = subprocess.run(args + ["--out", str(cut)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_bank(whole), load_bank(cut)
    by_row = {p.i: p for p in b.problems}
    assert sorted(by_row) == [p.i for p in a.problems]
    for p in a.problems:
        q = by_row[p.i]
        assert [(s.a, s.n, s.t) for s in p.samples] == [(s.a, s.n, s.t) for s in q.samples], p.i
        assert (p.greedy.a, p.greedy.t) == (q.greedy.a, q.greedy.t)
