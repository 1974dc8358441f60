"""collm: compute-optimal LLM inference.

The pipeline, one package per stage:

    prompts -> difficulty -> allocation -> strategies -> backends -> vote -> answer + cost

    collm.prompts      Prompt: the chat messages and the question span
    collm.difficulty   cheap difficulty signals, each reporting its own FLOPs
    collm.allocation   policies: samples (and strategy) per prompt under a budget
    collm.samplers     the round-based meter every policy runs on (bank replay or live)
    collm.strategies   greedy, majority, weighted, beam, lookahead, dvts, revisions
    collm.backends     torch, llama.cpp, remote OpenAI-compatible, bank replay
    collm.vote         majority and verifier-weighted aggregation
    collm.verifiers    outcome / process scorers
    collm.answers      answer extraction and grading, registered by task
    collm.datasets     vendored benchmarks and your own files, registered by name
    collm.bank         sample banks: build once, replay any policy
    collm.policies     policy files of every kind, and the ones shipped
    collm.pipeline     the one request path: greedy, fixed N, policy or strategy policy
"""

from collm.api import Collm  # noqa: E402
from collm.errors import CollmError  # noqa: E402
from collm.types import Answer, Completion, Generation, PromptScore, SamplingParams, Usage  # noqa: E402
from collm.version import __version__

__all__ = ["Answer", "Collm", "CollmError", "Completion", "Generation", "PromptScore", "SamplingParams", "Usage",
           "__version__"]
