"""The llama.cpp engine for CPUs (llama-cpp-python), behind the same interface.

On a CPU it runs these quantized GGUF models about 4x faster per stream than
transformers. llama-cpp-python's high-level API decodes one stream; this
engine drives llama.cpp's own batch API instead, through a scheduler
(collm.backends.llamacpp_scheduler) that batches continuously: every live
sample of every call, from any thread, decodes in one batch per step, new
calls join at the next step, a prompt is prefilled once and kept in the KV
cache for later calls, and prompts share the cells of their common prefix.

Sampling, per-token log-probs (of the raw model: log-softmax of the
unprocessed logits) and prompt entropies are computed in numpy from
llama.cpp's logits, each sample from its own seeded stream
(collm.backends.seeding): a seed reproduces, whatever the batching.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from collm.backends import seeding
from collm.backends.base import Backend, encode_prompt, find_stop
from collm.backends.llamacpp_scheduler import Job, Scheduler
from collm.errors import CollmError
from collm.flops import usage_for
from collm.models import ResolvedModel, resolve
from collm.prompts import ChatTemplate, Prompt, to_utf8
from collm.types import Completion, Generation, PromptScore, SamplingParams

DEFAULT_CONTEXT = 1024  # KV cells of each sequence: the longest prompt + answer of one sample (COLLM_CONTEXT)
MAX_ROWS = 64  # samples decoded together
MAX_ROOTS = 8  # prompts kept in the KV cache between calls


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """COLLM_THREADS, else the cores left idle by other processes.

    llama.cpp's threads meet at a barrier after every operation: one thread
    that shares its core with another busy process stalls them all (measured
    here on 2 shared cores: 54 tokens/s with 1 thread, 3 to 9 with 2). So the
    default takes every core of an idle machine, and only the idle ones of a
    busy machine: those not running another process right now (the
    1-minute load average lags: just after a busy minute it would starve an
    idle machine).
    """
    env = os.environ.get("COLLM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, cpu_count() - busy_cores())


def busy_cores(window_s: float = 0.25) -> int:
    """Cores busy with other work right now: the CPU time not idle over a
    short window (/proc/stat), in cores."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(window_s)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return 0
    if t1 <= t0:
        return 0
    return int(round((1 - (i1 - i0) / (t1 - t0)) * cpu_count()))


class LlamaCppEngine(Backend):
    """llama-cpp-python engine (CPU). n_threads: see default_threads(); n_ctx:
    the longest prompt + answer of one sample (default COLLM_CONTEXT, else
    1024; capped by the trained context); max_rows: samples decoded together;
    max_roots: prompts kept in the KV cache between calls. The KV cache holds
    (max_rows + max_roots) x n_ctx cells. Thread-safe: concurrent calls are
    batched together."""

    name = "llamacpp"
    tokenizes = True
    thread_safe = True  # calls from many threads join one continuous batch
    supports_cancel = True  # generate/score_prompt take cancel=threading.Event

    def __init__(self, model: ResolvedModel | str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, n_batch: int = 512, max_rows: int = MAX_ROWS,
                 max_roots: int = MAX_ROOTS):
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        self.resolved = model if isinstance(model, ResolvedModel) else resolve(model)
        if self.resolved.kind != "gguf":
            raise CollmError(f"the llama.cpp engine needs a .gguf file, not {self.resolved.path}")
        self.n_threads = threads = n_threads or default_threads()
        try:
            # The Llama object gives the model, its tokenizer and metadata; its
            # own context stays tiny: decoding happens in the context below.
            self.llm = llama_cpp.Llama(model_path=str(self.resolved.path), n_ctx=64, n_batch=64,
                                       n_threads=threads, n_threads_batch=threads, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise CollmError(f"llama.cpp cannot load {self.resolved.path}: {e}") from e
        llm = self.llm
        trained = int(llama_cpp.llama_model_n_ctx_train(llm.model))
        self.context_length = min(trained, n_ctx or int(os.environ.get("COLLM_CONTEXT") or DEFAULT_CONTEXT))
        most = llama_cpp.llama_max_parallel_sequences()
        self.max_roots = max(1, min(max_roots, most // 2))
        self.max_rows = max(1, min(max_rows, most - self.max_roots))
        self.n_seq_max = self.max_rows + self.max_roots
        self.n_batch = max(n_batch, self.max_rows + 64)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.n_seq_max * self.context_length
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_threads = params.n_threads_batch = threads
        params.n_seq_max = self.n_seq_max
        params.kv_unified = False  # cells of its own for every sequence (collm.backends.llamacpp_scheduler)
        try:
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        except ValueError as e:
            raise CollmError(f"llama.cpp cannot create a context for {self.resolved.path}: {e}") from e
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)

        self.model_id = self.resolved.model_id
        self.params = self.resolved.params or int(llama_cpp.llama_model_n_params(llm.model))
        self.n_vocab = llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.eos_ids = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.bos = llm.token_bos() if adds_bos and llm.token_bos() >= 0 else None
        piece = lambda t: self.detokenize([t]) if t >= 0 else ""  # noqa: E731
        self.template = ChatTemplate(llm.metadata.get("tokenizer.chat_template"), piece(llm.token_bos()), piece(llm.token_eos()))
        self._sched = Scheduler(self, self.max_rows, self.max_roots)

    # ---- tokens
    def _tokenize(self, text: str, special: bool) -> list[int]:
        return self.llm.tokenize(to_utf8(text), add_bos=False, special=special) if text else []

    def encode(self, prompt: Prompt) -> tuple[list[int], tuple[int, int]]:
        return encode_prompt(self.template, prompt, self._tokenize, self.bos)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids, special=True).decode("utf-8", "replace")

    # ---- llama.cpp batch API
    def _decode(self, tokens: Sequence[int], pos: Sequence[int], seqs: Sequence[int], logits: bool | Sequence[bool]) -> None:
        b = self._batch.batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos[i]
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seqs[i]
            b.logits[i] = logits if isinstance(logits, bool) else logits[i]
        rc = self._lib.llama_decode(self._ctx.ctx, b)
        if rc != 0:
            raise CollmError(f"llama.cpp could not decode a batch of {len(tokens)} tokens (code {rc})")

    def _rows(self, k: int) -> np.ndarray:
        """The logits of the last decode's k output rows (a view, valid until the next decode)."""
        return np.ctypeslib.as_array(self._lib.llama_get_logits(self._ctx.ctx), shape=(k * self.n_vocab,)).reshape(k, self.n_vocab)

    def _seq_rm(self, seq: int, p0: int) -> None:
        self._lib.llama_memory_seq_rm(self._mem, seq, p0, -1)

    def _seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self._lib.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def _clear_memory(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)

    # ---- generate
    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None, cancel: threading.Event | None = None) -> list[Generation]:
        prompts, params = self.check_request(prompts, n, params)
        enc = [ids for ids, _ in self.encode_checked(prompts, params.max_tokens)]
        first = seeding.firsts(offsets, len(enc))
        rows = 1 if params.greedy else n  # greedy: the n samples are one, copied
        rngs = [[None] * rows if params.greedy else seeding.streams(params.seed, ids, f, rows)
                for ids, f in zip(enc, first)]
        job = self._sched.run(Job("generate", enc, n, params, rngs, cancel))
        out = []
        for ids, cs, pre in zip(enc, job.out, job.prefilled):
            if params.greedy:
                one = cs[0]
                cs = [Completion(one.text, one.tokens, one.logprob, list(one.token_logprobs), one.finish_reason,
                                 stop_reason=one.stop_reason) for _ in range(n)]
            u = usage_for(self.params, pre, [c.tokens for c in cs])
            u.cached_tokens = len(ids) - pre  # found in the KV cache: no FLOPs
            out.append(Generation(cs, u))
        return out

    def _completion(self, toks, lps, finish, stop) -> Completion:
        body = toks[:-1] if toks and toks[-1] in self.eos_ids else toks
        text = self.detokenize(body)
        # matched: the stop string that ended it (a step boundary, not the answer's
        # end); it and what follows are dropped from the text, as in vLLM
        cut, matched = find_stop(text, stop)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(text=text, tokens=len(toks), logprob=float(sum(lps)), token_logprobs=lps, finish_reason=finish,
                          stop_reason=matched)

    # ---- score_prompt
    def score_prompt(self, prompts: Sequence[Prompt | str], cancel: threading.Event | None = None) -> list[PromptScore]:
        prompts, _ = self.check_request(prompts, 1, SamplingParams(max_tokens=1))
        enc = self.encode_checked(prompts, 0)
        job = self._sched.run(Job("score", [ids for ids, _ in enc], cancel=cancel))
        out = []
        for (ids, span), (ent, lps), pre in zip(enc, job.out, job.prefilled):
            u = usage_for(self.params, pre, 0)
            u.cached_tokens = len(ids) - pre
            out.append(PromptScore(list(ids), list(ent), list(lps), span, u))
        return out

    def rows_in_use(self) -> int:
        """Samples decoding or waiting for a sequence right now (a snapshot, read without a lock)."""
        sched = self._sched
        return len(sched.rows) + len(sched.pending)

    def clear_cache(self) -> None:
        """Forget the prompts kept in the KV cache (the next calls prefill afresh)."""
        self._sched.run(Job("clear", []))

    def close(self) -> None:
        if getattr(self, "llm", None) is not None:
            self._sched.close()
            self._batch.close()
            self._ctx.close()
            self.llm.close()
            self.llm = None
