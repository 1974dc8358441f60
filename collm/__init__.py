"""collm: compute-optimal LLM inference.

The pipeline, one package per stage:

    prompts -> difficulty -> allocation -> strategies -> backends -> vote -> answer + cost

    collm.prompts      Prompt: the chat messages and the question span
    collm.difficulty   cheap difficulty signals, each reporting its own FLOPs
    collm.allocation   policies: samples (and strategy) per prompt under a budget
    collm.strategies   greedy, majority, weighted, beam, lookahead, dvts, revisions
    collm.backends     torch, llama.cpp, remote OpenAI-compatible, bank replay
    collm.vote         majority and verifier-weighted aggregation
    collm.verifiers    outcome / process scorers
    collm.answers      answer extraction and grading, registered by task
    collm.datasets     vendored benchmarks, registered by name
    collm.bank         sample banks: build once, replay any policy
"""

__version__ = "0.1.0"

from collm.api import Collm  # noqa: E402
from collm.errors import CollmError  # noqa: E402
from collm.types import Completion, Generation, PromptScore, Usage  # noqa: E402

__all__ = ["Collm", "CollmError", "Completion", "Generation", "PromptScore", "Usage", "__version__"]
