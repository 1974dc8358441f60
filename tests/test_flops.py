"""FLOP accounting checked by hand on a known case."""

from collm.flops import inference_flops, pretraining_flops, usage_for
from collm.types import Usage


def test_prefill_counted_once_for_shared_prompt():
    # 135M params, a 93-token prompt shared by 4 samples of 10, 20, 30, 40 tokens:
    # processed tokens = 93 + 100 = 193 -> 2 * 135e6 * 193 = 5.211e10 FLOPs
    u = usage_for(135_000_000, 93, [10, 20, 30, 40])
    assert u.prompt_tokens == 93 and u.completion_tokens == 100
    assert u.flops == 2 * 135_000_000 * 193 == 5.211e10


def test_usage_adds():
    u = Usage(1, 2, 3.0) + Usage(10, 20, 30.0)
    assert (u.prompt_tokens, u.completion_tokens, u.flops) == (11, 22, 33.0)
    u += Usage(1, 1, 1.0)
    assert u.total_tokens == 35


def test_train_vs_inference_constants():
    assert inference_flops(1e9, 1e3) == 2e12
    assert pretraining_flops(1e9, 1e3) == 6e12
