"""The whole "calibrate collm for your model" loop against a real
OpenAI-compatible server (the llama.cpp server with SmolLM2 standing in for
vLLM), as a user runs it: a JSONL file of your own -> `collm bank build
--upstream` (killed with SIGKILL mid-build, then resumed: no problem lost,
none twice) -> `collm calibrate` -> `collm serve --upstream --policy`,
asked with the official openai client, whose collm object names the
calibrated policy. Skipped only when llama_cpp is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from llamacpp_server import ROOT, collm_serve, llama_server

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]

QUESTIONS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 times 3?", "9"),
             ("What is 12 + 30?", "42"), ("What is 7 + 1?", "8"), ("What is 20 / 4?", "5")]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with llama_server(str(tmp_path_factory.mktemp("llamacpp"))) as url:
        yield url


def collm(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collm", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def problem_ids(bank) -> list[int]:
    return [json.loads(ln)["i"] for ln in bank.read_text().splitlines()[1:] if ln.endswith("}")]


def test_your_questions_your_server_bank_kill_resume_calibrate_serve(upstream, tmp_path):
    import openai

    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"q": q, "gold": a}) + "\n" for q, a in QUESTIONS))
    bank, policy = tmp_path / "bank.jsonl", tmp_path / "policy.json"
    build = [sys.executable, "-m", "collm", "bank", "build", "--upstream", upstream, "--upstream-params", "135M",
             "--dataset", str(data), "--question-field", "q", "--answer-field", "gold", "--task", "number",
             "--k", "3", "--max-tokens", "48", "--concurrency", "2", "--out", str(bank), "--quiet"]

    # kill -9 once the first problem is written, the others under way
    proc = subprocess.Popen(build, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not (bank.exists() and problem_ids(bank)):
        time.sleep(0.05)
    assert proc.poll() is None, f"the build ended before it could be killed: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    before = problem_ids(bank)
    assert 1 <= len(before) < len(QUESTIONS)

    r = subprocess.run(build, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    ids = problem_ids(bank)
    assert sorted(ids) == [1, 2, 3, 4, 5, 6] and ids[:len(before)] == before  # none lost, none twice, the first kept
    assert f"{6 - len(before)} problems written, {len(before)} already there" in r.stderr
    head = json.loads(bank.read_text().splitlines()[0])
    assert head["model"]["name"] == "smollm2" and head["model"]["params"] == 135_000_000
    assert head["signals"]["prompt"] is True  # the llama.cpp server gives echo + logprobs
    assert head["sampling"]["k"] == 3 and head["sampling"]["max_tokens"] == 48
    lines = [json.loads(ln) for ln in bank.read_text().splitlines()[1:]]
    assert all(len(d["samples"]) == 3 and d["q_entropy"] and d["prompt_tokens"] > d["q_tokens"] > 0 for d in lines)

    r = collm("calibrate", "--bank", str(bank), "--policy", "early-stop", "--budget", "2", "--out", str(policy))
    assert r.returncode == 0, r.stderr
    assert "policy early-stop calibrated on 6 problems" in r.stdout
    assert json.loads(policy.read_text())["model"] == {"name": "smollm2", "sha256": None, "params": 135_000_000}

    args = ["--upstream", upstream, "--upstream-params", "135M", "--policy", str(policy), "--max-tokens", "48",
            "--task", "number"]
    with collm_serve(str(tmp_path), args) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=120)
        resp = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "What is 2 + 3?"}])
    info = resp.model_extra["collm"]
    assert info["policy"] == "policy.json: early-stop, calibrated for smollm2"
    assert info["strategy"] == "policy:early-stop" and info["budget"]["source"] == "policy" and info["samples"] >= 1
    assert resp.choices[0].message.content
