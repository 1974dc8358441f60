"""What the server answers: OpenAI's response bodies, with one aggregated
choice, usage counting every sample, and a `collm` object saying what was spent."""

from __future__ import annotations

import time
import uuid

from collm.serve import schemas as S
from collm.serve.config import ServeConfig
from collm.serve.metrics import SAMPLE_BUCKETS


def chosen_completion(ans):
    """A completion whose answer won the vote (the first), else the first completion."""
    for c in ans.completions:
        if ans.answer is not None and c.answer == ans.answer:
            return c
    return ans.completions[0] if ans.completions else None


def collm_info(result) -> S.CollmInfo:
    ans = result.ans
    return S.CollmInfo(answer=ans.answer, votes={k: float(v) for k, v in ans.votes.items()}, samples=ans.n,
                       strategy=ans.strategy, task=result.task, difficulty=result.difficulty,
                       flops=result.usage.flops, budget=result.budget, policy=result.policy)


def usage_out(usage) -> S.UsageOut:
    prompt = usage.prompt_tokens + usage.cached_tokens
    details = S.PromptTokensDetails(cached_tokens=usage.cached_tokens) if usage.cached_tokens else None
    return S.UsageOut(prompt_tokens=prompt, completion_tokens=usage.completion_tokens,
                      total_tokens=prompt + usage.completion_tokens, prompt_tokens_details=details)


def response(endpoint: str, result, cfg: ServeConfig):
    """The whole response of /v1/chat/completions ("chat") or /v1/completions."""
    comp = chosen_completion(result.ans)
    text = comp.text if comp else ""
    finish = comp.finish_reason if comp else "stop"
    common = dict(created=int(time.time()), model=cfg.model_name, usage=usage_out(result.usage),
                  collm=collm_info(result))
    if endpoint == "chat":
        return S.ChatCompletionResponse(id=f"chatcmpl-{uuid.uuid4().hex}", **common, choices=[
            S.ChatChoice(index=0, message=S.ChatChoiceMessage(content=text), finish_reason=finish)])
    return S.CompletionResponse(id=f"cmpl-{uuid.uuid4().hex}", **common, choices=[
        S.CompletionChoice(index=0, text=text, finish_reason=finish)])


def record(metrics, result, seconds: float) -> None:
    """The metrics of one answered request."""
    ans, usage = result.ans, result.usage
    metrics.inc("collm_samples_total", ans.n)
    metrics.inc("collm_flops_total", usage.flops)
    metrics.inc("collm_tokens_total", usage.prompt_tokens, kind="prompt")
    metrics.inc("collm_tokens_total", usage.completion_tokens, kind="completion")
    if result.budget.load_shrunk:
        metrics.inc("collm_load_shrunk_total")
    metrics.observe("collm_request_latency_seconds", seconds)
    metrics.observe("collm_samples_per_request", ans.n, SAMPLE_BUCKETS)
