from collm.prompts import ChatTemplate, Prompt

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
