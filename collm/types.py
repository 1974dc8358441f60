"""The few data types that travel between pipeline stages: how to sample
(SamplingParams), what a model returned (Completion, Generation, PromptScore),
what it cost (Usage) and the aggregated answer to a prompt (Answer)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from collm.errors import CollmError

# The one set of sampling defaults (SamplingParams below). They are the
# settings the shared bank was drawn with and the shipped policies were
# calibrated on: temperature 0.8, the 50 most likely tokens (Hugging Face
# generate()'s default top_k), 400 new tokens at most.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 50
DEFAULT_MAX_TOKENS = 400


@dataclass(frozen=True)
class SamplingParams:
    """How a generation call samples, as in vLLM's SamplingParams.

    temperature  0 decodes greedily (argmax); > 0 samples
    top_p        nucleus: the smallest head of tokens whose mass reaches top_p
    top_k        the k most likely tokens only (0: the whole vocabulary)
    max_tokens   new tokens per generation at most; a generation cut there is
                 unfinished and never yields an answer
    seed         fixes every sample (collm.backends.seeding); None: fresh entropy
    stop         strings that end a generation (dropped from its text)

    Every path (Backend.generate, Strategy.run, the samplers, Collm, the CLI
    and the server) takes one of these; the defaults are DEFAULT_* above.
    """

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 1.0
    top_k: int = DEFAULT_TOP_K
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop or ()))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes) -> "SamplingParams":
        return replace(self, **changes)

    def as_greedy(self) -> "SamplingParams":
        return replace(self, temperature=0.0)

    def check(self, context_length: int | None = None) -> "SamplingParams":
        """Raise CollmError on a setting no engine can honour; returns self."""
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise CollmError(f"max_tokens must be at least 1 (got {self.max_tokens})")
        if context_length is not None and self.max_tokens >= context_length:
            raise CollmError(f"max_tokens {self.max_tokens} is beyond the model's context of {context_length} tokens")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)) or self.temperature < 0:
            raise CollmError(f"temperature must be >= 0 (got {self.temperature})")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise CollmError(f"top_p must be in (0, 1] (got {self.top_p})")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool):
            raise CollmError(f"top_k must be a whole number (got {self.top_k!r})")
        if self.top_k < 0:
            raise CollmError(f"top_k must be >= 0, 0 for the whole vocabulary (got {self.top_k})")
        if self.seed is not None and not isinstance(self.seed, int):
            raise CollmError(f"seed must be a whole number or None (got {self.seed!r})")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise CollmError("stop strings must be non-empty strings")
        return self

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_tokens": self.max_tokens, "seed": self.seed, "stop": list(self.stop)}


def sampling(params: "SamplingParams | None" = None, **changes) -> SamplingParams:
    """`params` (default SamplingParams()) with `changes` applied."""
    p = params if params is not None else SamplingParams()
    return replace(p, **changes) if changes else p


@dataclass
class Usage:
    """Compute spent: tokens and FLOPs (2 x parameters x processed tokens).

    prompt_tokens are the prompt tokens prefilled (computed); cached_tokens
    those an engine found already in its KV cache (a prompt kept from an
    earlier call), which cost no FLOPs."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0
    cached_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.flops + other.flops,
            self.cached_tokens + other.cached_tokens,
        )

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.flops += other.flops
        self.cached_tokens += other.cached_tokens
        return self

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict:
        d = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "flops": self.flops}
        if self.cached_tokens:
            d["cached_tokens"] = self.cached_tokens
        return d


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


@dataclass
class Answer:
    """The aggregated answer to one prompt, with everything it cost."""

    answer: str | None
    votes: dict[str, float]
    n: int  # generations spent (samples, beams expanded, revisions...)
    strategy: str
    usage: Usage
    completions: list[Completion] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self, with_completions: bool = False) -> dict:
        d = {"answer": self.answer, "n": self.n, "votes": self.votes, "strategy": self.strategy,
             "usage": self.usage.to_dict(), **self.extra}
        if with_completions:
            d["completions"] = [c.to_dict() for c in self.completions]
        return d
