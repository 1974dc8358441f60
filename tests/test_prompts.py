import pytest

from collm.backends.base import Backend
from collm.errors import CollmError
from collm.prompts import ChatTemplate, Prompt, to_utf8, utf8_error
from collm.types import SamplingParams

QWEN_LIKE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_split_isolates_the_question():
    t = ChatTemplate(QWEN_LIKE)
    before, q, after = t.split(Prompt("What is 2+2?", system="sys"))
    assert before == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\n"
    assert q == "What is 2+2?"
    assert after == "<|im_end|>\n<|im_start|>assistant\n"


def test_continued_prompt_appends_partial_answer():
    t = ChatTemplate(QWEN_LIKE)
    p = Prompt("Q?").continued("Step 1: x.\n\n")
    assert t.render(p).endswith("<|im_start|>assistant\nStep 1: x.\n\n")


def test_history_goes_before_question():
    t = ChatTemplate(QWEN_LIKE)
    p = Prompt("again?", system=None, history=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "1"}])
    text = t.render(p)
    assert text.index("first") < text.index("again?")


class _Plain(Backend):
    """A backend with nothing but the shared request checks."""

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, seed=None, stop=None, top_k=0):
        raise NotImplementedError

    def score_prompt(self, prompts):
        raise NotImplementedError


@pytest.mark.parametrize("prompt,what", [
    ("hi \ud800", "the question"),
    (Prompt("q", system="sys \udfff"), "the system message"),
    (Prompt("q", history=[{"role": "user", "content": "ok"}, {"role": "assistant", "content": "\ud83d"}]),
     "message 2 of the history"),
    (Prompt("q").continued("step \ud800"), "the partial answer"),
])
def test_check_request_refuses_text_utf8_cannot_carry(prompt, what):
    """A lone surrogate (JSON's "\\ud800") is a clear CollmError, not a
    UnicodeEncodeError from a tokenizer."""
    with pytest.raises(CollmError, match=f"{what} cannot be encoded as UTF-8 \\(a lone surrogate U\\+D"):
        _Plain().check_request([prompt], 1, SamplingParams(max_tokens=8))


def test_utf8_helpers():
    assert utf8_error("fine: ü, 漢字, 🙂") is None
    assert utf8_error("ab\udc00") == "a lone surrogate U+DC00 at character 2"
    assert to_utf8("ü") == "ü".encode()
    with pytest.raises(CollmError, match="the prompt cannot be encoded as UTF-8"):
        to_utf8("x\ud800")
    assert _Plain().check_request(["ü 🙂?"], 1, SamplingParams(max_tokens=8))[0][0].question == "ü 🙂?"
