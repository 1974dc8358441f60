"""Both embedded engines on the real SmolLM2: sampling, usage, question span,
prompt scores, bad input. Each engine loads once per module; outputs stay short."""

import math

import pytest

from collm.backends import find_stop, load_backend, pick_engine
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.types import SamplingParams

pytestmark = pytest.mark.model

MODEL = "smollm2-135m"
QUESTIONS = ["What is 7 times 8?", "Tom has 3 apples and buys 5 more. How many apples does he have?"]
SMOLLM2_PARAMS = 134_515_008


def _llamacpp_or_skip():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python is not installed")


@pytest.fixture(scope="module", params=["torch", pytest.param("llamacpp", marks=pytest.mark.llamacpp)])
def engine(request):
    if request.param == "llamacpp":
        _llamacpp_or_skip()
    b = load_backend(MODEL, engine=request.param)
    yield b
    b.close()


def _decode(b, ids):
    return b.tokenizer.decode(ids) if b.name == "torch" else b.detokenize(ids)


def test_params_and_context(engine):
    assert engine.params == SMOLLM2_PARAMS  # tied embedding counted once
    # torch: the model's context, capped at 8192; llama.cpp: the cells each of its sequences holds
    # (collm.backends.llamacpp_scheduler), 1024 unless COLLM_CONTEXT says otherwise
    assert engine.context_length == (8192 if engine.name == "torch" else 1024)
    assert engine.model_id.startswith(MODEL)


def test_seed_reproduces_and_n_completions(engine):
    sp = SamplingParams(temperature=1.0, top_k=0, max_tokens=6)
    a = engine.generate(QUESTIONS, 3, sp.replace(seed=7))
    b = engine.generate(QUESTIONS, 3, sp.replace(seed=7))
    c = engine.generate(QUESTIONS, 3, sp.replace(seed=8))
    assert len(a) == len(QUESTIONS) and all(len(g.completions) == 3 for g in a)
    texts = lambda gens: [x.text for g in gens for x in g.completions]  # noqa: E731
    assert texts(a) == texts(b)
    assert [x.token_logprobs for g in a for x in g.completions] == [x.token_logprobs for g in b for x in g.completions]
    assert texts(a) != texts(c)
    assert len(set(texts(a))) > 2  # samples of one prompt differ


def test_prompts_batched_together_decode_as_they_would_alone(engine):
    """One call over several prompts (partial answers of one question share
    their prefix, as search sends them) gives each prompt what a call of its
    own gives, greedily: no cross-talk between their KV sequences. (Each alone
    from an empty cache: llama.cpp's numbers move by up to ~0.05 nats with
    where a sequence's cells lie among others' in the shared KV cache, as it
    quantizes activations to 8 bits; the greedy text does not.)"""
    base = Prompt(QUESTIONS[1])
    prompts = [base.continued("Tom starts with 3 apples."), base.continued("First, "), Prompt(QUESTIONS[0]), base]
    together = engine.generate(prompts, n=2, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=12, seed=None))
    clear = getattr(engine, "clear_cache", lambda: None)
    alone = [(clear(), engine.generate([p], n=2, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=12,
                                                                     seed=None))[0])[1] for p in prompts]
    for t, a in zip(together, alone):
        assert [c.text for c in t.completions] == [c.text for c in a.completions]
        # the same tokens; a prompt kept in the llama.cpp engine's cache is not prefilled again
        assert t.usage.completion_tokens == a.usage.completion_tokens
        assert t.usage.prompt_tokens + t.usage.cached_tokens == a.usage.prompt_tokens + a.usage.cached_tokens
        assert t.usage.flops == pytest.approx(2 * SMOLLM2_PARAMS * (t.usage.prompt_tokens + t.usage.completion_tokens))
        assert t.completions[0].token_logprobs == pytest.approx(a.completions[0].token_logprobs, abs=0.05)


def test_completion_fields_and_usage_arithmetic(engine):
    gens = engine.generate(QUESTIONS, n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=6, seed=1))
    for q, g in zip(QUESTIONS, gens):
        ids, _ = engine.encode(Prompt(q))
        for c in g.completions:
            assert 1 <= c.tokens <= 6 and c.tokens == len(c.token_logprobs)
            assert c.logprob == pytest.approx(sum(c.token_logprobs))
            assert all(lp <= 1e-4 and math.isfinite(lp) for lp in c.token_logprobs)
            assert c.finish_reason in ("stop", "length")
            assert c.finish_reason == "stop" or c.tokens == 6
        done = sum(c.tokens for c in g.completions)
        # the shared prefill counted once (or not at all, when a cached prompt needed none)
        assert g.usage.prompt_tokens + g.usage.cached_tokens == len(ids)
        assert g.usage.completion_tokens == done
        assert g.usage.flops == pytest.approx(2 * SMOLLM2_PARAMS * (g.usage.prompt_tokens + done))


def test_length_cut_and_greedy_copies(engine):
    g = engine.generate([QUESTIONS[1]], n=2, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=3, seed=None))[0]
    a, b = g.completions
    assert a.finish_reason == "length" and a.tokens == 3
    assert (a.text, a.token_logprobs) == (b.text, b.token_logprobs)


def test_stop_string_cuts_the_text(engine):
    full = engine.generate([QUESTIONS[0]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=16, seed=None))[0].completions[0]
    words = full.text.split()
    assert len(words) >= 3, full.text
    word = words[2]
    cut = engine.generate([QUESTIONS[0]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=16, seed=None, stop=[word]))[0].completions[0]
    assert cut.finish_reason == "stop" and cut.stop_reason == word
    assert cut.text == full.text[: full.text.index(word)]
    assert cut.tokens < full.tokens


def test_question_span_is_the_question(engine):
    for q in QUESTIONS + ["Is <|im_end|> a token?"]:
        ids, (s, e) = engine.encode(Prompt(q))
        assert _decode(engine, ids[s:e]) == q
        assert 0 < s < e < len(ids)


def test_score_prompt(engine):
    scores = engine.score_prompt(QUESTIONS)
    for q, sc in zip(QUESTIONS, scores):
        ids, span = engine.encode(Prompt(q))
        assert sc.token_ids == ids and sc.question_span == span
        assert len(sc.entropy) == len(sc.logprobs) == len(ids)
        assert sc.entropy[0] is None and sc.logprobs[0] is None
        assert all(math.isfinite(x) and x >= 0 for x in sc.entropy[1:])
        assert all(math.isfinite(x) and x <= 1e-4 for x in sc.logprobs[1:])
        assert len(sc.q_entropy) == span[1] - span[0]
        assert max(sc.q_entropy) > 0.1  # a question is not predictable
        assert sc.usage.prompt_tokens + sc.usage.cached_tokens == len(ids)
        assert sc.usage.flops == pytest.approx(2 * SMOLLM2_PARAMS * sc.usage.prompt_tokens)


def test_score_then_generate_agree(engine):
    """The log-prob of the first sampled token equals score_prompt's for the same sequence
    (from an empty cache: llama.cpp's numbers move by ~0.01 nats with where a
    sequence's cells lie among others')."""
    getattr(engine, "clear_cache", lambda: None)()
    c = engine.generate([QUESTIONS[0]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=2, seed=None))[0].completions[0]
    full = Prompt(QUESTIONS[0], assistant_prefix=c.text)
    sc = engine.score_prompt([full])[0]
    assert sc.logprobs[-len(c.token_logprobs):] == pytest.approx(c.token_logprobs, abs=2e-3)


def test_top_k_one_samples_the_greedy_text(engine):
    greedy = engine.generate([QUESTIONS[1]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=8, seed=None))[0].completions[0]
    gens = engine.generate([QUESTIONS[1]], n=3, params=SamplingParams(temperature=1.0, top_k=1, max_tokens=8, seed=3))[0].completions
    assert [c.text for c in gens] == [greedy.text] * 3
    wide = engine.generate([QUESTIONS[1]], n=6, params=SamplingParams(temperature=1.5, top_k=0, max_tokens=8, seed=3))[0].completions
    assert len({c.text for c in wide}) > 1  # top_k 0: the whole vocabulary


def test_bad_requests(engine):
    with pytest.raises(CollmError, match="top_k must be"):
        engine.generate([QUESTIONS[0]], n=2, params=SamplingParams(temperature=1.0, top_k=-1, max_tokens=256, seed=None))
    with pytest.raises(CollmError, match="beyond the model's context"):
        engine.generate([QUESTIONS[0]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=engine.context_length, seed=None))
    with pytest.raises(CollmError, match="beyond the model's context"):
        engine.generate([QUESTIONS[0]], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=engine.context_length - 5, seed=None))  # with the prompt
    with pytest.raises(CollmError, match="n must be"):
        engine.generate([QUESTIONS[0]], n=0, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=256, seed=None))
    with pytest.raises(CollmError, match="empty"):
        engine.score_prompt(["  "])


def test_text_utf8_cannot_carry_is_a_collm_error(engine):
    """A lone surrogate (JSON can carry "\\ud800") is refused with a CollmError by
    the request checks and by the tokenizer itself, never a UnicodeEncodeError."""
    with pytest.raises(CollmError, match="cannot be encoded as UTF-8"):
        engine.encode(Prompt("hi \ud800"))
    with pytest.raises(CollmError, match="the question cannot be encoded as UTF-8"):
        engine.generate(["hi \ud800"], 1, SamplingParams(max_tokens=4))
    with pytest.raises(CollmError, match="the system message cannot be encoded as UTF-8"):
        engine.score_prompt([Prompt("hi", system="\udfff")])


def test_engines_agree_on_tokens_and_scores():
    """The two engines see the same token ids and close prompt statistics."""
    _llamacpp_or_skip()
    a, b = load_backend(MODEL, engine="torch"), load_backend(MODEL, engine="llamacpp")
    try:
        sa, sb = a.score_prompt(QUESTIONS), b.score_prompt(QUESTIONS)
        for x, y in zip(sa, sb):
            assert x.token_ids == y.token_ids and x.question_span == y.question_span
            diff = [abs(u - v) for u, v in zip(x.q_entropy, y.q_entropy)]
            assert sum(diff) / len(diff) < 0.15, diff
    finally:
        a.close()
        b.close()


def test_load_backend_errors(tmp_path):
    with pytest.raises(CollmError, match="unknown engine"):
        load_backend(MODEL, engine="vllm")
    with pytest.raises(CollmError, match="unknown model"):
        load_backend("no-such-model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CollmError, match="needs a .gguf"):
        load_backend(str(tmp_path), engine="llamacpp")
    assert pick_engine("cuda") == "torch"
    assert pick_engine("cpu", kind="hf") == "torch"


def test_find_stop():
    assert find_stop("a. b\n\nc", ["\n\n", "."]) == (1, ".")
    assert find_stop("abc", ["x"]) == (-1, None)
    assert find_stop("abc", None) == (-1, None)
