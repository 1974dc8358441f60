"""The one interface every strategy uses to reach a model."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from collm.errors import CollmError
from collm.prompts import ChatTemplate, Prompt, as_prompt, check_encodable
from collm.types import Generation, PromptScore, SamplingParams, sampling


class Backend(ABC):
    """A model behind generate / score_prompt, with its size for FLOP accounting.

    generate(prompts, n, params) -> one Generation per prompt, n Completions
        each, every Completion with its text, token count, summed and
        per-token log-probs and finish reason; the Generation's usage counts
        the prompt's prefill once and every generated token. params is a
        SamplingParams (None: the defaults). offsets[j] (optional) is the
        index of prompt j's first new sample, so that a prompt's samples do
        not depend on how calls are cut (collm.backends.seeding).
    score_prompt(prompts) -> one PromptScore per prompt from one forward pass
        (raise CollmError when the model behind cannot give prompt log-probs).

    Optional capabilities are declared here, as class attributes a backend
    sets, so that callers ask rather than guess:

        thread_safe      generate/score_prompt may run in many threads at once
        supports_cancel  generate/score_prompt take cancel=threading.Event and
                         stop the work under way when it is set
        tokenizes        encode(prompt) gives exact token ids and the question span
        template         the model's ChatTemplate, when collm renders prompts itself
    """

    name: str = "backend"
    params: int = 0  # parameter count: every cost is 2 x params x tokens
    context_length: int = 2048
    model_id: str = ""  # identifies the weights (e.g. sha256 of the GGUF)
    thread_safe: bool = False
    supports_cancel: bool = False
    tokenizes: bool = False
    template: ChatTemplate | None = None

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None) -> list[Generation]: ...

    @abstractmethod
    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]: ...

    # ---- optional capabilities with their defaults ----
    def encode(self, prompt: Prompt) -> tuple[list[int], tuple[int, int]]:
        """Token ids of the templated prompt and the question's span (backends with `tokenizes`)."""
        raise CollmError(f"the {self.name} backend has no tokenizer of its own")

    def count_prompt_tokens(self, prompt: Prompt) -> tuple[int, int]:
        """(tokens of the whole templated prompt, tokens of the question): exact
        where the backend tokenizes, else a generous guess (3 characters a token
        and 64 for the template), which budgets only ever overestimate."""
        if self.tokenizes:
            ids, (s, e) = self.encode(as_prompt(prompt))
            return len(ids), max(1, e - s)
        p = as_prompt(prompt)
        q = max(1, len(p.question) // 3)
        rest = len(p.system or "") + sum(len(str(m.get("content", ""))) for m in p.history) + len(p.assistant_prefix)
        return q + rest // 3 + 64, q

    # ---- helpers shared by engines ----
    def check_request(self, prompts: Sequence[Prompt | str], n: int,
                      params: SamplingParams | None = None) -> tuple[list[Prompt], SamplingParams]:
        """(the prompts as Prompt objects, the sampling settings), or CollmError."""
        if not isinstance(n, int) or n < 1:
            raise CollmError(f"n must be at least 1 (got {n})")
        params = sampling(params).check(self.context_length)
        out = [check_encodable(as_prompt(p)) for p in prompts]
        for p in out:
            if not p.question.strip():
                raise CollmError("the question is empty")
        return out, params

    def encode_checked(self, prompts: list[Prompt], max_tokens: int) -> list[tuple[list[int], tuple[int, int]]]:
        """Token ids and question span of each prompt (engines define encode()), refusing
        a prompt that leaves no room for max_tokens in the context."""
        enc = [self.encode(p) for p in prompts]
        for ids, _ in enc:
            if len(ids) + max_tokens > self.context_length:
                raise CollmError(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) is beyond the model's "
                                 f"context of {self.context_length} tokens")
        return enc

    def identity(self) -> dict:
        """{name, sha256, params} of the weights behind this backend, as far as it
        knows them: what policy files and bank headers record, and what a policy
        is checked against before it is used."""
        res = getattr(self, "resolved", None)
        if res is not None and getattr(res, "sha256", None):
            return {"name": res.name, "sha256": res.sha256, "params": self.params}
        mid = str(self.model_id or "")
        if re.fullmatch(r"[0-9a-f]{64}", mid):
            return {"name": None, "sha256": mid, "params": self.params}
        m = re.fullmatch(r"(.+)@sha256:([0-9a-f]{16,64})", mid)
        if m:
            return {"name": m.group(1), "sha256": m.group(2), "params": self.params}
        return {"name": mid or self.name, "sha256": None, "params": self.params}

    @property
    def model_name(self) -> str:
        """The model's registry name (or path), else whatever identifies it."""
        res = getattr(self, "resolved", None)
        return getattr(res, "name", None) or self.model_id or self.name

    def close(self) -> None:  # release engine resources
        pass

    def describe(self) -> dict:
        return {"name": self.name, "params": self.params, "context_length": self.context_length, "model_id": self.model_id}


def find_stop(text: str, stop) -> tuple[int, str | None]:
    """(index, stop string) of the earliest stop string in text, or (-1, None)."""
    hits = [(i, s) for s, i in ((s, text.find(s)) for s in stop or () if s) if i >= 0]
    return min(hits, key=lambda h: h[0]) if hits else (-1, None)


def encode_prompt(template, prompt, tokenize, bos: int | None = None) -> tuple[list[int], tuple[int, int]]:
    """Token ids of a templated prompt and the span of the question's own tokens.

    The three pieces of ChatTemplate.split are tokenized separately and
    concatenated, so the span is exact. tokenize(text, special) -> ids; special
    is False for the question: a user's text never becomes control tokens.
    """
    before, question, after = template.split(prompt)
    head = ([bos] if bos is not None else []) + tokenize(before, True)
    q = tokenize(question, False)
    return head + q + tokenize(after, True), (len(head), len(head) + len(q))
