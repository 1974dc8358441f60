"""Prompts and their chat template, with the question's span kept apart.

A prompt is rendered as three strings: the template text before the question,
the question itself, and the text after it (end of turn, assistant header, and
any partial assistant answer being continued). Engines tokenize the three
pieces separately, so the question's own tokens are known exactly: the
prefix-entropy signal must look at them only, since the template prefix is the
same for every prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
import jinja2.sandbox

from collm.errors import CollmError

DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

_SENTINEL = "\x00COLLM_QUESTION\x00"


@dataclass
class Prompt:
    """What the model is asked.

    question: the user's question (the span difficulty signals look at).
    system: the system message (None: no system message).
    history: earlier turns as chat messages, placed after the system message
        and before the question (sequential revisions use this).
    assistant_prefix: a partial answer the model continues (beam search).
    id: an optional key (a dataset row), used by the bank replay backend.
    """

    question: str
    system: str | None = DEFAULT_SYSTEM
    history: list[dict] = field(default_factory=list)
    assistant_prefix: str = ""
    id: str | int | None = None

    def continued(self, text: str) -> "Prompt":
        """The same prompt with `text` appended to the partial answer."""
        return Prompt(self.question, self.system, list(self.history), self.assistant_prefix + text, self.id)

    def messages(self, question: str | None = None) -> list[dict]:
        msgs = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        msgs.extend(self.history)
        msgs.append({"role": "user", "content": self.question if question is None else question})
        return msgs


def as_prompt(p: "Prompt | str") -> Prompt:
    return p if isinstance(p, Prompt) else Prompt(str(p))


def utf8_error(text: str) -> str | None:
    """What keeps `text` from being encoded as UTF-8, or None. Only a lone
    UTF-16 surrogate (U+D800 to U+DFFF) can: JSON carries one as an escape
    such as "\\ud800", Python keeps it in a str, and no tokenizer takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a lone surrogate U+{ord(text[e.start]):04X} at character {e.start}"
    return None


def to_utf8(text: str, what: str = "the prompt") -> bytes:
    """`text` as UTF-8 bytes, or a CollmError saying that `what` cannot be."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CollmError(f"{what} cannot be encoded as UTF-8 ({utf8_error(text)})") from None


def check_encodable(p: Prompt) -> Prompt:
    """`p`, or a CollmError naming its part (question, system message,
    history, partial answer) that cannot be encoded as UTF-8."""
    to_utf8(p.question, "the question")
    if p.system is not None:
        to_utf8(p.system, "the system message")
    for i, m in enumerate(p.history, 1):
        to_utf8(str(m.get("content", "")), f"message {i} of the history")
    to_utf8(p.assistant_prefix, "the partial answer")
    return p


class ChatTemplate:
    """A model's Jinja chat template (from its GGUF or tokenizer config)."""

    def __init__(self, template: str | None, bos_token: str = "", eos_token: str = ""):
        self.source = template
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(msg):
            raise jinja2.exceptions.TemplateError(msg)

        env.globals["raise_exception"] = raise_exception
        self._tmpl = env.from_string(template) if template else None

    def render_messages(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if self._tmpl is None:  # a plain fallback for models without a template
            out = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            return out + ("assistant: " if add_generation_prompt else "")
        return self._tmpl.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def split(self, prompt: Prompt) -> tuple[str, str, str]:
        """(before, question, after) whose concatenation is the rendered prompt."""
        text = self.render_messages(prompt.messages(_SENTINEL))
        if text.count(_SENTINEL) != 1:
            raise ValueError("chat template does not render the question exactly once")
        before, after = text.split(_SENTINEL)
        return before, prompt.question, after + prompt.assistant_prefix

    def render(self, prompt: Prompt) -> str:
        return "".join(self.split(prompt))
