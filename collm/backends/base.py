"""The one interface every strategy uses to reach a model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from collm.errors import CollmError
from collm.prompts import Prompt, as_prompt, check_encodable
from collm.types import Generation, PromptScore


# Sampling keeps the 50 most likely tokens unless told otherwise: Hugging Face
# generate()'s default, which the shared bank and the policies calibrated on it
# were drawn with (0 samples from the whole vocabulary, as vLLM does).
DEFAULT_TOP_K = 50


class Backend(ABC):
    """A model behind generate / score_prompt, with its size for FLOP accounting.

    generate(prompts, n, ...) -> one Generation per prompt, n Completions each,
        every Completion with its text, token count, summed and per-token
        log-probs and finish reason; the Generation's usage counts the prompt's
        prefill once and every generated token.
    score_prompt(prompts) -> one PromptScore per prompt from one forward pass.
    """

    name: str = "backend"
    params: int = 0  # parameter count: every cost is 2 x params x tokens
    context_length: int = 2048
    model_id: str = ""  # identifies the weights (e.g. sha256 of the GGUF)

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt | str],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        top_k: int = 0,
    ) -> list[Generation]: ...

    @abstractmethod
    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]: ...

    # ---- helpers shared by engines ----
    def check_request(self, prompts: Sequence[Prompt | str], n: int, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                      top_k: int = 0) -> list[Prompt]:
        if n < 1:
            raise CollmError(f"n must be at least 1 (got {n})")
        if max_tokens < 1:
            raise CollmError(f"max_tokens must be at least 1 (got {max_tokens})")
        if max_tokens >= self.context_length:
            raise CollmError(f"max_tokens {max_tokens} is beyond the model's context of {self.context_length} tokens")
        if temperature < 0:
            raise CollmError(f"temperature must be >= 0 (got {temperature})")
        if not 0 < top_p <= 1:
            raise CollmError(f"top_p must be in (0, 1] (got {top_p})")
        if top_k < 0 or int(top_k) != top_k:
            raise CollmError(f"top_k must be a whole number >= 0, 0 for the whole vocabulary (got {top_k})")
        out = [check_encodable(as_prompt(p)) for p in prompts]
        for p in out:
            if not p.question.strip():
                raise CollmError("the question is empty")
        return out

    def encode_checked(self, prompts: list[Prompt], max_tokens: int) -> list[tuple[list[int], tuple[int, int]]]:
        """Token ids and question span of each prompt (engines define encode()), refusing
        a prompt that leaves no room for max_tokens in the context."""
        enc = [self.encode(p) for p in prompts]
        for ids, _ in enc:
            if len(ids) + max_tokens > self.context_length:
                raise CollmError(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) is beyond the model's "
                                 f"context of {self.context_length} tokens")
        return enc

    @property
    def model_name(self) -> str:
        """The model's registry name (or path), else whatever identifies it."""
        res = getattr(self, "resolved", None)
        return getattr(res, "name", None) or self.model_id or self.name

    def close(self) -> None:  # release engine resources
        pass

    def describe(self) -> dict:
        return {"name": self.name, "params": self.params, "context_length": self.context_length, "model_id": self.model_id}
