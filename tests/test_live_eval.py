"""`collm eval --live` on the real SmolLM2: answers written as they finish,
kill -9 and the same command resumes with nothing lost or duplicated, the
summary's fields, and bad input refused with one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collm.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 times 3?", "9"),
             ("What is 8 divided by 2?", "4"), ("What is 1 + 1?", "2")]


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.model
def test_live_eval_writes_as_it_goes_and_resumes_after_kill_9(questions, tmp_path):
    out = tmp_path / "live.jsonl"
    cmd = [sys.executable, "-m", "collm", "eval", "--live", "--model", "smollm2-135m", "--dataset", str(questions),
           "--uniform", "2", "--max-tokens", "16", "--concurrency", "1", "--out", str(out), "--quiet", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (out.exists() and len(out.read_text().splitlines()) >= 2):  # the header and one answer
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no answer written in 300 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    first = len(lines(out)) - 1
    assert 1 <= first < len(QUESTIONS)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = lines(out)
    assert rows[0]["collm_live_eval"] == 1 and rows[0]["method"] == {"uniform": 2}
    ids = [x["i"] for x in rows[1:]]
    assert sorted(ids) == [1, 2, 3, 4, 5]  # each question once: the file's line numbers
    s = json.loads(r.stdout)
    assert s["questions"] == 5 and s["answered_now"] == 5 - first
    assert s["generations"] == 2 and s["latency_p95"] >= s["latency_p50"] > 0 and s["flops"] > 0
    assert 0 <= s["accuracy"] <= 1 and s["tokens_per_s"] > 0
    # the same file with other settings is refused
    other = [a if a != "2" else "3" for a in cmd[3:-1]]  # --uniform 3 instead of 2
    assert main(other) == 2


@pytest.mark.parametrize("extra,needle", [
    (["--budget", "0.5"], "below one greedy pass"),
    (["--uniform", "0"], "--uniform must be at least 1"),
    (["--uniform", "2", "--budget", "3"], "takes no --policy or --budget"),
    (["--concurrency", "0"], "--concurrency"),
])
def test_bad_live_options_exit_2_before_any_model_loads(questions, tmp_path, extra, needle, capsys, monkeypatch):
    import collm.backends

    monkeypatch.setattr(collm.backends, "load_backend", lambda *a, **k: pytest.fail("a model was loaded"))
    argv = ["eval", "--live", "--model", "smollm2-135m", "--dataset", str(questions), "--out", str(tmp_path / "o.jsonl")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_an_unknown_dataset_or_a_model_that_cannot_load(tmp_path, capsys):
    assert main(["eval", "--live", "--model", "smollm2-135m", "--dataset", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a model")
    assert main(["eval", "--live", "--model", str(bad), "--dataset", "gsm8k", "--limit", "1",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a GGUF file" in err and "Traceback" not in err
    assert main(["eval", "--live", "--dataset", "gsm8k"]) == 2
    assert "--out" in capsys.readouterr().err
