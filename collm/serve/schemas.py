"""Request and response bodies of the OpenAI-compatible API, plus collm's own.

The fields follow OpenAI's chat and legacy completions APIs. Two differ in
meaning, on purpose:

- `n` is the sample budget, not the number of choices: collm always answers
  with one aggregated choice, and `n` forces how many samples it aggregates.
  A stream likewise carries that one choice (index 0), whatever `n` is.
- `collm` (optional) carries collm's per-request options: a forced budget
  (`n`), a cap (`max_n`), the answer task and the strategy.

Unknown fields are accepted and ignored, as OpenAI-compatible servers do, so
that clients sending e.g. `user` still work. `stream` and `stream_options`
are checked strictly (a boolean, options only with `stream: true`, only the
options OpenAI defines), since a client that misspells them would otherwise
get a response of a shape it does not expect.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_serializer, model_validator

from collm.prompts import utf8_error

MAX_N = 64  # a hard ceiling on any per-request budget; the server's own cap is usually lower


class CollmOptions(BaseModel):
    """collm's per-request options (all optional)."""

    model_config = ConfigDict(extra="forbid")

    n: int | None = Field(None, ge=1, le=MAX_N, description="force exactly this many samples")
    max_n: int | None = Field(None, ge=1, le=MAX_N, description="cap the policy's budget at this many samples")
    task: str | None = Field(None, max_length=32, description="answer extraction: gsm8k (default), number, math, choice")
    strategy: str | None = Field(None, max_length=32, description="majority (default) or greedy")


# text the server takes: not empty (an empty question is refused), and
# encodable as UTF-8 (JSON can carry a lone surrogate, "\\ud800"; no model can)
Text = Annotated[str, Field(min_length=1)]


def _encodable(text: str, what: str = "text") -> str:
    """`text`, or a ValueError (a 400 naming the field) when it is empty or
    UTF-8 cannot carry it."""
    if text == "":
        raise ValueError(f"{what} is empty")
    why = utf8_error(text)
    if why:
        raise ValueError(f"{what} cannot be encoded as UTF-8 ({why})")
    return text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | Annotated[list[dict], Field(min_length=1)] = Field(
        ..., description="text, or a list of {type: text, text} parts")

    @field_validator("content", mode="before")
    @classmethod
    def _text_checks(cls, v):
        """Checked before the types (which say the same), so that the error
        says why in one message rather than one per branch of the union."""
        if isinstance(v, str):
            return _encodable(v, "the content")
        if isinstance(v, list):
            if not v:
                raise ValueError("the content holds no parts")
            for i, part in enumerate(v):
                if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                    _encodable(part["text"], f"the text of part {i}")
        return v

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`. `include_obfuscation` is accepted and
    ignored: it pads chunks against length side channels on token streams,
    and collm streams a finished answer, not tokens as they come."""

    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool | None = Field(
        None, description="an extra chunk before [DONE] with empty choices and the usage of every sample")
    include_obfuscation: StrictBool | None = Field(None, description="accepted and ignored")


class _Sampling(BaseModel):
    """Fields shared by both endpoints."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=256)
    n: int | None = Field(None, ge=1, le=MAX_N, description="collm: the sample budget (one aggregated choice is returned)")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000, description="as in vLLM: the k most likely tokens; 0 for all")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    stream: StrictBool | None = Field(False, description="server-sent events of chunks (collm.serve.stream)")
    stream_options: StreamOptions | None = Field(None, description="only with stream: true")
    collm: CollmOptions | None = None

    @field_validator("n", "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed",
                     mode="before")
    @classmethod
    def _numbers_not_booleans(cls, v):
        if isinstance(v, bool):  # pydantic's lax mode would read true as 1
            raise ValueError("must be a number, not a boolean")
        return v

    @model_validator(mode="after")
    def _options_need_a_stream(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=256)


class CompletionRequest(_Sampling):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)] = Field(
        ..., description="the question (a list must hold exactly one string)")

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_checks(cls, v):
        """As ChatMessage's: one clear message before the union's types."""
        if isinstance(v, str):
            return _encodable(v, "the prompt")
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError("send exactly one prompt per request")
            if isinstance(v[0], str):
                _encodable(v[0], "the prompt")
        return v

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        return v[0] if isinstance(v, list) else v


# ---- responses ----

class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(..., description="prompt tokens found in the engine's KV cache (no FLOPs spent on them)")


class UsageOut(BaseModel):
    prompt_tokens: int = Field(..., description="prompt tokens of every sample's call, cached ones included")
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_details(self, handler):
        d = handler(self)
        if d.get("prompt_tokens_details") is None:
            d.pop("prompt_tokens_details", None)
        return d


class BudgetInfo(BaseModel):
    """How the sample budget was chosen, and what load did to it."""

    source: str = Field(..., description="client (forced n), policy, or default")
    requested: int = Field(..., description="samples the client or policy asked for (an adaptive policy: its cap), after caps")
    allowed: int = Field(..., description="samples allowed after load and the token bucket had their say")
    used: int = Field(..., description="generations actually drawn")
    load_shrunk: bool = Field(..., description="true when load or the token bucket cut the budget (allowed < requested)")
    load_factor: float = Field(..., description="the share of the budget kept under load (1.0: none cut)")
    queued: int = Field(..., description="requests waiting for a slot when this one was planned")
    bucket_level: float = Field(..., description="tokens left in the global bucket after this request was charged")


class CollmInfo(BaseModel):
    answer: str | None
    votes: dict[str, float]
    samples: int
    strategy: str
    task: str
    difficulty: float | None = Field(..., description="a difficulty-plan policy: mean prefix entropy (nats) of the "
                                     "question's tokens; an adaptive policy: 1 - its confidence in the answer; "
                                     "null when not measured")
    flops: float
    budget: BudgetInfo
    policy: str | None = Field(None, description="the policy that decided the budget: its file, kind and the model "
                                                 "it was calibrated for, or '(uncalibrated fallback)'; null when the "
                                                 "client's n or no policy decided")


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    collm: CollmInfo


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut
    collm: CollmInfo


# ---- stream chunks (collm.serve.stream): one JSON object per `data:` line ----

class ChunkDelta(BaseModel):
    """What a chunk adds to the message; unset fields are left out, as OpenAI does."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageOut | None = None  # sent (null until the usage chunk) only with include_usage
    collm: CollmInfo | None = None  # on the last chunk only


class CompletionChunkChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: UsageOut | None = None
    collm: CollmInfo | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "collm"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str
    model: str
    in_flight: int
    queued: int
