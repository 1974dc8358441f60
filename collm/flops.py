"""Cost accounting. Inference costs about 2 FLOPs per parameter per processed
token (Kaplan et al.; Snell et al. 2024, sec. 7); attention's share is ignored,
as it is small at these context lengths. A prompt shared by n samples is
prefilled once (prefix caching: vLLM, SGLang, llama.cpp all do this)."""

from __future__ import annotations

from collm.types import Usage


def inference_flops(params: int, tokens: int | float) -> float:
    return 2.0 * params * tokens


def pretraining_flops(params: float, tokens: float) -> float:
    return 6.0 * params * tokens


def usage_for(params: int, prompt_tokens: int, completion_tokens: list[int] | int) -> Usage:
    """Usage of one prompt prefilled once and decoded into the given completions."""
    done = sum(completion_tokens) if isinstance(completion_tokens, list) else completion_tokens
    return Usage(prompt_tokens, done, inference_flops(params, prompt_tokens + done))
