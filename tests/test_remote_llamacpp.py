"""Integration: a real llama.cpp server (llama-cpp-python[server]) on loopback
as the upstream of the remote backend and of `collm serve --upstream`.

The llama.cpp server ignores n > 1: the backend must notice and fan the
samples out; it serves echo + logprobs, so prompt scoring works. Skipped only
when llama_cpp is not installed (the Makefile installs it; CI runs this).
"""

from __future__ import annotations

import importlib.util

import httpx
import pytest
from llamacpp_server import collm_serve, llama_server

from collm.types import SamplingParams

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with llama_server(str(tmp_path_factory.mktemp("llamacpp"))) as url:
        yield url


def test_remote_backend_fans_out_and_scores(upstream):
    from collm.backends.remote import RemoteBackend
    from collm.prompts import Prompt

    b = RemoteBackend(upstream, params=134_515_008)
    try:
        g = b.generate([Prompt("What is 2 + 3?")], n=3, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=16, seed=1))[0]
        s = b.score_prompt([Prompt("Tom has 3 apples and buys 2 more. How many apples?")])[0]
    finally:
        b.close()
    assert b.model == "smollm2" and b._multi_n == [False]  # n ignored: fanned out
    assert len(g.completions) == 3
    assert all(0 < c.tokens <= 16 and c.logprob < 0 and len(c.token_logprobs) == c.tokens for c in g.completions)
    assert g.usage.completion_tokens == sum(c.tokens for c in g.completions)
    assert g.usage.prompt_tokens > 10 and g.usage.flops == 2 * 134_515_008 * g.usage.total_tokens
    lo, hi = s.question_span
    assert 0 < lo < hi <= len(s.token_ids) and hi - lo >= 10
    assert len(s.q_entropy) == hi - lo and all(x >= 0 for x in s.q_entropy)


def test_beam_search_over_llamacpp_never_ends_an_answer_at_a_step(upstream):
    """The llama.cpp server does not say which stop string matched: a stop on
    the step separator is marked unknown, and beam search goes on from it
    instead of taking the first step for the whole answer."""
    from collm.answers import get_task
    from collm.backends.remote import RemoteBackend
    from collm.strategies import get_strategy

    b = RemoteBackend(upstream, params=134_515_008)
    try:
        g = b.generate(["Name three colours, one per line."], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=16, seed=None, stop=["\n"]))[0]
        ans = get_strategy("beam", beam_width=2, max_steps=4, step_tokens=12).run(
            b, ["Name three colours, one per line."], 2, get_task("number"), params=SamplingParams(top_k=0, max_tokens=40, seed=0))[0]
    finally:
        b.close()
    c = g.completions[0]
    assert c.finish_reason == "stop" and not c.stop_known and c.stop_reason is None
    assert "\n" not in c.text.strip()  # it stopped on the requested string
    for comp in ans.completions:  # each candidate went past its first step (or ran out of budget)
        assert len(comp.steps) >= 2 or not comp.finished


def test_collm_serve_over_llamacpp_with_openai_client(upstream, tmp_path):
    """`collm serve --upstream` as a process, queried by the official client."""
    import openai

    args = ["--upstream", upstream, "--upstream-params", "134515008", "--policy", "none", "--default-n", "2",
            "--max-tokens", "24", "--served-model-name", "smol"]
    with collm_serve(str(tmp_path), args, env={"COLLM_API_KEYS": "integration-key-1"}) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="integration-key-1", max_retries=0, timeout=120)
        r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "What is 2 + 3?"}])
        info = r.model_extra["collm"]
        assert info["samples"] == 2 and info["strategy"] == "majority" and info["flops"] > 0
        assert r.usage.completion_tokens > 0 and r.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong-key-123", max_retries=0).models.list()
        assert "collm_samples_total 2" in httpx.get(f"{base}/metrics").text
