"""The server's settings, the one error type its handlers raise, and how
other exceptions map to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from collm.errors import CollmError
from collm.serve.limits import Rejected
from collm.serve.scope import Cancelled
from collm.types import SamplingParams


@dataclass
class ServeConfig:
    model_name: str = "collm"
    api_keys: list[str] = field(default_factory=list)
    default_n: int = 4  # samples when neither the client nor a policy says
    max_n: int = 16  # the most samples any request may use
    max_tokens_limit: int = 1024  # the largest max_tokens a client may ask
    max_prompt_chars: int = 16_000  # all messages together
    max_body_bytes: int = 1 << 20
    max_in_flight: int = 1
    max_queue: int = 64
    bucket_capacity: float | None = None  # global token bucket (tokens); None: no bucket
    bucket_refill_per_s: float | None = None
    key_bucket_capacity: float | None = None  # per API key
    key_bucket_refill_per_s: float | None = None
    request_timeout_s: float = 300.0
    stream_keepalive_s: float = 5.0  # a stream's keep-alive comment every this many seconds while samples run
    # how samples are drawn when the client does not say (temperature, top_k as in
    # vLLM's extra field, max_tokens within max_tokens_limit, seed)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    task: str = "gsm8k"

    @property
    def default_max_tokens(self) -> int:
        return min(self.sampling.max_tokens, self.max_tokens_limit)


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}


def as_api_error(e: Exception) -> ApiError:
    """The ApiError that answering a request answers `e` with: the same for the
    response's status and for an error event in a stream (collm.serve.stream)."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, Rejected):
        return ApiError(429, str(e), "rate_limit_error", e.reason, headers={"Retry-After": str(e.retry_after)})
    if isinstance(e, Cancelled):
        return ApiError(499, "request cancelled", "cancelled")
    if isinstance(e, CollmError):
        status = getattr(e, "http_status", 400)
        return ApiError(status, str(e), "upstream_error" if status >= 500 else "invalid_request_error")
    return ApiError(500, "internal server error", "server_error")
