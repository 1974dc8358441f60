"""The few data types that travel between pipeline stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Usage:
    """Compute spent: tokens and FLOPs (2 x parameters x processed tokens)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.flops + other.flops,
        )

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.flops += other.flops
        return self

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "flops": self.flops,
        }


@dataclass
class Completion:
    """One sampled continuation.

    finish_reason is "stop" (end-of-sequence or a stop string) or "length"
    (cut at max_tokens): an unfinished completion never yields an answer.
    stop_reason is the matched stop string (as vLLM reports it), None otherwise.
    """

    text: str
    tokens: int
    logprob: float  # summed log-prob of the generated tokens (under the raw model)
    token_logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"
    answer: str | None = None  # filled by an extractor
    # the stop string that ended it (finish_reason "stop"); None at end-of-sequence
    # or max_tokens. Step-wise search tells a finished step from a finished answer by it.
    stop_reason: str | None = None
    # False when a stop string was asked for and the engine stopped without
    # saying whether on it or at end-of-sequence (e.g. a llama.cpp server upstream)
    stop_known: bool = True

    @property
    def finished(self) -> bool:
        return self.finish_reason == "stop"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("token_logprobs")
        return d


@dataclass
class Generation:
    """The n completions of one prompt, with what they cost."""

    completions: list[Completion]
    usage: Usage


@dataclass
class PromptScore:
    """One forward pass over a templated prompt.

    entropy[t] is the entropy (nats) of the next-token distribution at the
    position that predicts token t, logprobs[t] that token's log-prob; both are
    None for t = 0 (nothing predicts the first token). question_span = (start,
    end) marks the question's own tokens inside the prompt: the chat template
    around it is the same for every prompt, so difficulty signals look there.
    """

    token_ids: list[int]
    entropy: list[float | None]
    logprobs: list[float | None]
    question_span: tuple[int, int]
    usage: Usage

    @property
    def q_entropy(self) -> list[float]:
        s, e = self.question_span
        return [x for x in self.entropy[s:e] if x is not None]

    @property
    def q_nll(self) -> list[float]:
        s, e = self.question_span
        return [-x for x in self.logprobs[s:e] if x is not None]
