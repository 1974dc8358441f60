"""The llama.cpp engine's continuous batching (collm.backends.llamacpp_scheduler)
on the real SmolLM2: calls from many threads share decode steps and give what
each call gives alone, prompts stay in the KV cache, cancellation cuts a call,
an engine with few sequences still serves everything in turn."""

from __future__ import annotations

import threading
import time

import pytest

from collm.errors import CollmError
from collm.prompts import Prompt
from collm.types import SamplingParams

pytestmark = [pytest.mark.model, pytest.mark.llamacpp]

SAMPLE = SamplingParams(temperature=0.8, max_tokens=12, seed=5)
GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("llama_cpp")
    from collm.backends.llamacpp_engine import LlamaCppEngine

    e = LlamaCppEngine("smollm2-135m")
    yield e
    e.close()


def test_calls_from_threads_share_decode_steps(engine):
    qs = [f"What is {i} plus {i + 1}?" for i in range(6)]
    alone = [engine.generate([q], 2, SAMPLE)[0] for q in qs]
    engine.clear_cache()
    engine._sched.most_jobs = 0
    out: dict = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, engine.generate([qs[i]], 2, SAMPLE)[0]))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(out) == list(range(6))
    assert engine._sched.most_jobs >= 3  # several calls' samples in one llama_decode
    for i, g in out.items():
        assert len(g.completions) == 2 and all(0 < c.tokens <= 12 for c in g.completions)
        # each sample's own stream and cells: the same seed gives the same samples as the call alone
        assert [c.text for c in g.completions] == [c.text for c in alone[i].completions]
        assert [c.token_logprobs for c in g.completions] == [c.token_logprobs for c in alone[i].completions]


def test_a_prompt_stays_in_the_cache(engine):
    engine.clear_cache()
    q = "Tom has 3 apples and buys 5 more. How many apples does he have?"
    ids, _ = engine.encode(Prompt(q))
    first = engine.generate([q], 1, GREEDY)[0].usage
    again = engine.generate([q], 3, SAMPLE)[0].usage
    assert first.prompt_tokens == len(ids) and first.cached_tokens == 0
    assert again.prompt_tokens == 0 and again.cached_tokens == len(ids)  # no prefill: no FLOPs for it
    assert again.flops == pytest.approx(2 * engine.params * again.completion_tokens)
    # the difficulty probe's prefill is the generation's too
    engine.clear_cache()
    s = engine.score_prompt(["What is 9 times 9?"])[0]
    g = engine.generate(["What is 9 times 9?"], 1, GREEDY)[0]
    assert s.usage.prompt_tokens == len(s.token_ids) and g.usage.prompt_tokens == 0


def test_greedy_and_sampled_calls_decode_together(engine):
    q = "What is 7 times 8?"
    want = engine.generate([q], 1, GREEDY)[0].completions[0].text
    got: dict = {}
    a = threading.Thread(target=lambda: got.__setitem__("g", engine.generate([q], 1, GREEDY)[0]))
    b = threading.Thread(target=lambda: got.__setitem__("s", engine.generate(["Name two animals."], 4, SAMPLE)[0]))
    a.start(), b.start()
    a.join(120), b.join(120)
    assert got["g"].completions[0].text == want and len(got["s"].completions) == 4


def test_cancel_cuts_a_call_and_frees_its_cells(engine):
    cancel = threading.Event()
    err: list = []

    def work():
        try:
            engine.generate(["Write a long story about a dog and a cat."], 4,
                            SamplingParams(temperature=0.8, max_tokens=400, seed=1), cancel=cancel)
        except CollmError as e:
            err.append(e)

    t = threading.Thread(target=work)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    cancel.set()
    t.join(30)
    assert [str(e) for e in err] == ["cancelled"] and time.monotonic() - t0 < 10
    # what the cut call had computed comes with the error, so a caller can count it
    assert err[0].prefilled > 0 and 0 < err[0].decoded < 4 * 400
    sched = engine._sched
    assert not sched.rows and not sched.pending
    assert len(sched.free_rows) == sched.max_rows  # every sample's sequence is free again


def test_few_sequences_serve_everything_in_turn_and_refuse_what_never_fits():
    from collm.backends.llamacpp_engine import LlamaCppEngine

    e = LlamaCppEngine("smollm2-135m", n_ctx=200, max_rows=2, max_roots=2)
    try:
        sp = SamplingParams(temperature=0.8, max_tokens=16, seed=2)
        g = e.generate(["What is 2 + 2?"], 6, sp)[0]
        assert len(g.completions) == 6  # two at a time
        qs = ["What is 2 + 2?", "Name a colour.", "Say OK.", "What is 3 + 3?"]
        out = e.generate(qs, 2, sp)  # four prompts, two root sequences: the idle ones make way
        assert all(len(x.completions) == 2 for x in out) and len(e._sched.roots) <= 2
        with pytest.raises(CollmError, match="beyond the model's context"):
            e.generate(["What is 2 + 2?"], 1, SamplingParams(max_tokens=190))
    finally:
        e.close()
