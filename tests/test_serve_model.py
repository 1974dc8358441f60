"""End to end: `collm serve` on the embedded SmolLM2, queried with the
official openai client (short outputs: this is plumbing, not accuracy)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.model

KEY = "model-test-key-1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    policy = tmp / "policy.json"  # every measured difficulty is > 0: the top rung (3 samples) unless it is tiny
    policy.write_text(json.dumps({"kind": "thresholds", "thresholds": [0.01], "budgets": [1, 3]}))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(tmp / "serve.log", "w+")
    cmd = [sys.executable, "-m", "collm", "serve", "--model", "smollm2-135m", "--port", str(port),
           "--policy", str(policy), "--max-tokens", "24", "--max-n", "4", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "COLLM_API_KEYS": KEY})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # bounded: a first load may convert weights
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"collm serve exited: {log.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("collm serve did not become ready in 180 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=300)


def test_chat_policy_budget_with_collm_object(client):
    r = client.chat.completions.create(model="smollm2-135m",
                                       messages=[{"role": "user", "content": "Tom has 3 apples and buys 2 more. How many apples does he have?"}])
    info = r.model_extra["collm"]
    assert info["budget"]["source"] == "policy" and isinstance(info["difficulty"], float)
    assert info["samples"] == 3 and info["strategy"] == "majority" and info["task"] == "gsm8k"
    assert r.usage.completion_tokens >= 3  # every sample is counted
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # FLOPs count the tokens computed: prompt tokens found in the KV cache cost none
    cached = r.usage.prompt_tokens_details.cached_tokens if r.usage.prompt_tokens_details else 0
    assert info["flops"] == pytest.approx(2 * 134_515_008 * (r.usage.total_tokens - cached), rel=0.05)
    assert len(r.choices) == 1 and r.choices[0].message.content


def test_completions_forced_greedy(client):
    r = client.completions.create(model="smollm2-135m", prompt="What is 2 + 3?", n=1, max_tokens=16)
    info = r.model_extra["collm"]
    assert info["samples"] == 1 and info["strategy"] == "greedy" and info["budget"]["source"] == "client"
    assert info["difficulty"] is None  # a forced budget needs no difficulty
    assert r.choices[0].text and r.usage.completion_tokens <= 16


def test_errors_through_the_client(client, server):
    import openai

    with pytest.raises(openai.BadRequestError, match="over this server's limit"):
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}], n=9)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="not-the-key", max_retries=0).models.list()
    assert [m.id for m in client.models.list().data] == ["smollm2-135m"]
    text = httpx.get(f"{server}/metrics").text
    assert 'collm_requests_total{endpoint="chat",status="200"}' in text and "collm_samples_total 4" in text
