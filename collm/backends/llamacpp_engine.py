"""The llama.cpp engine for CPUs (llama-cpp-python), behind the same interface.

On a CPU it runs these quantized GGUF models about 4x faster per stream than
transformers. llama-cpp-python's high-level API decodes one stream; this
engine drives llama.cpp's own batch API instead, so the n samples of a
prompt decode together:

  - the prompt is prefilled once into sequence 0 of a unified KV cache
    (consecutive prompts reuse their common prefix: the chat template's
    system turn);
  - sequences 1..n-1 share those cells (llama_memory_seq_cp copies no data);
  - every step decodes one token of each unfinished sample in one batch;
    finished samples leave the batch; afterwards the samples' cells are freed;
  - several prompts of one call decode together too, while their samples fit
    in max_seqs sequences and the KV cells: each prompt is prefilled into its
    own sequence, sharing the cells of its longest common prefix with a prompt
    already there (search calls send many partial answers of one question),
    and one batch carries a token of every live sample of every prompt.

Sampling, per-token log-probs (of the raw model: log-softmax of the
unprocessed logits) and prompt entropies are computed in numpy from
llama.cpp's logits, with a numpy Generator seeded per call: a seed reproduces.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from collm.backends import encode_prompt, find_stop, seeding
from collm.backends.base import Backend
from collm.errors import CollmError
from collm.flops import usage_for
from collm.models import ResolvedModel, resolve
from collm.prompts import ChatTemplate, Prompt, to_utf8
from collm.types import Completion, Generation, PromptScore, SamplingParams, Usage

DEFAULT_CONTEXT = 8192  # KV cells, shared by a prompt and its samples; capped by the trained context
MAX_SEQS = 64  # samples decoded together


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
    """llama-cpp-python engine (CPU). n_threads: see default_threads();
    max_seqs: samples decoded together (a prompt's n samples go in groups of it)."""

    name = "llamacpp"
    tokenizes = True

    def __init__(self, model: ResolvedModel | str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, n_batch: int = 512, max_seqs: int = MAX_SEQS):
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
        self.context_length = min(trained, n_ctx or DEFAULT_CONTEXT)
        self.max_seqs = max(1, min(max_seqs, llama_cpp.llama_max_parallel_sequences()))
        self.n_batch = max(n_batch, self.max_seqs)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.context_length
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_threads = params.n_threads_batch = threads
        params.n_seq_max = self.max_seqs
        params.kv_unified = True  # the samples share their prompt's cells
        try:
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        except ValueError as e:
            raise CollmError(f"llama.cpp cannot create a context for {self.resolved.path}: {e}") from e
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._cached: list[int] = []  # the tokens whose cells sequence 0 holds

        self.model_id = self.resolved.model_id
        self.params = self.resolved.params or int(llama_cpp.llama_model_n_params(llm.model))
        self.n_vocab = llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.eos_ids = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.bos = llm.token_bos() if adds_bos and llm.token_bos() >= 0 else None
        piece = lambda t: self.detokenize([t]) if t >= 0 else ""  # noqa: E731
        self.template = ChatTemplate(llm.metadata.get("tokenizer.chat_template"), piece(llm.token_bos()), piece(llm.token_eos()))

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

    def _prefill(self, ids: list[int]) -> np.ndarray:
        """Bring sequence 0 to exactly `ids`, reusing the cached common prefix; the last logits."""
        same = min(_common_prefix(self._cached, ids), len(ids) - 1)  # decode at least one token, for its logits
        self._seq_rm(0, same)
        self._cached = list(ids[:same])
        for i in range(same, len(ids), self.n_batch):
            part = ids[i:i + self.n_batch]
            last = [False] * len(part)
            last[-1] = True
            self._decode(part, range(i, i + len(part)), [0] * len(part), last)
            self._cached.extend(part)
        return self._rows(1)[0].copy()

    # ---- generate
    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None) -> list[Generation]:
        prompts, params = self.check_request(prompts, n, params)
        temperature, top_p, top_k, max_tokens = params.temperature, params.top_p, params.top_k, params.max_tokens
        seed, stop = params.seed, list(params.stop)
        enc = [ids for ids, _ in self.encode_checked(prompts, max_tokens)]
        first = seeding.firsts(offsets, len(enc))
        rows = 1 if temperature == 0 else n  # greedy: the n samples are one

        def rngs(j, a, b):  # the streams of samples a .. b-1 of prompt j (collm.backends.seeding)
            return [None] * (b - a) if temperature == 0 else seeding.streams(seed, enc[j], first[j] + a, b - a)

        comps: list[list[Completion]] = []
        i = 0
        while i < len(enc):
            group, cells = [i], len(enc[i]) + rows * max_tokens
            while (i + len(group) < len(enc) and (len(group) + 1) * rows <= self.max_seqs
                   and cells + len(enc[i + len(group)]) + rows * max_tokens <= self.context_length):
                cells += len(enc[i + len(group)]) + rows * max_tokens
                group.append(i + len(group))
            if rows <= self.max_seqs and cells <= self.context_length:
                comps += self._sample([enc[j] for j in group], rows, temperature, top_p, top_k, max_tokens,
                                      [g for j in group for g in rngs(j, 0, rows)], stop)
            else:  # one prompt whose samples do not fit at once: in groups, as many as the free cells hold
                ids = enc[i]
                per = max(1, min(self.max_seqs, (self.context_length - len(ids)) // max_tokens))
                got = []
                for k in range(0, rows, per):
                    m = min(per, rows - k)
                    got += self._sample([ids], m, temperature, top_p, top_k, max_tokens, rngs(i, k, k + m), stop)[0]
                comps.append(got)
            i += len(group)
        out = []
        for ids, cs in zip(enc, comps):
            if temperature == 0:
                one = cs[0]
                cs = [Completion(one.text, one.tokens, one.logprob, list(one.token_logprobs), one.finish_reason,
                                 stop_reason=one.stop_reason) for _ in range(n)]
            out.append(Generation(cs, usage_for(self.params, len(ids), [c.tokens for c in cs])))
        return out

    def _prefill_into(self, seq: int, ids: list[int], donors: list[tuple[int, list[int]]]) -> np.ndarray:
        """Prefill `ids` into sequence `seq` (empty), sharing the cells of the
        longest common prefix with a donor sequence that holds its prompt; the last logits."""
        same, src = 0, None
        for dseq, dids in donors:
            c = _common_prefix(dids, ids)
            if c > same:
                same, src = c, dseq
        same = min(same, len(ids) - 1)  # decode at least one token, for its logits
        if src is not None and same > 0:
            self._lib.llama_memory_seq_cp(self._mem, src, seq, 0, same)
        for i in range(same, len(ids), self.n_batch):
            part = ids[i:i + self.n_batch]
            last = [False] * len(part)
            last[-1] = True
            self._decode(part, range(i, i + len(part)), [seq] * len(part), last)
        return self._rows(1)[0].copy()

    def _sample(self, prompts: list[list[int]], rows, temperature, top_p, top_k, max_tokens, rngs, stop) -> list[list[Completion]]:
        """Decode `rows` samples of each prompt together, all prompts in one batch
        per step. Prompt j's samples are sequences j*rows .. j*rows + rows-1; the
        first prompt is sequence 0 (its prefix cached across calls). rngs[s] is
        sequence s's own random stream (None when greedy)."""
        eos = self.eos_ids
        firsts = [self._prefill(prompts[0])]
        for j in range(1, len(prompts)):
            firsts.append(self._prefill_into(j * rows, prompts[j], [(k * rows, prompts[k]) for k in range(j)]))
        for j in range(len(prompts)):
            for r in range(1, rows):
                self._lib.llama_memory_seq_cp(self._mem, j * rows, j * rows + r, -1, -1)
        total = len(prompts) * rows
        toks = [[] for _ in range(total)]
        lps = [[] for _ in range(total)]
        finish = ["length"] * total
        start = [len(prompts[s // rows]) for s in range(total)]  # position of each sequence's first new token
        live = list(range(total))  # sequence id = row
        logits = np.stack([firsts[s // rows] for s in live])
        try:
            for step in range(max_tokens):
                picked, lp = _pick(logits, temperature, top_p, [rngs[r] for r in live], top_k)
                keep = []
                for k, r in enumerate(live):
                    t = int(picked[k])
                    toks[r].append(t)
                    lps[r].append(float(lp[k]))
                    if t in eos or (stop and find_stop(self.detokenize(toks[r][-24:]), stop)[0] >= 0):
                        finish[r] = "stop"
                    else:
                        keep.append(k)
                if not keep or step == max_tokens - 1:
                    break
                live = [live[k] for k in keep]
                self._decode([toks[r][-1] for r in live], [start[r] + step for r in live], live, True)
                logits = self._rows(len(live))
        finally:  # free the samples' cells; sequence 0 goes back to the first prompt
            for s in range(1, total):
                self._seq_rm(s, 0)
            self._seq_rm(0, len(prompts[0]))
        done = [self._completion(toks[r], lps[r], finish[r], stop) for r in range(total)]
        return [done[j * rows:(j + 1) * rows] for j in range(len(prompts))]

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
    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]:
        prompts, _ = self.check_request(prompts, 1, SamplingParams(max_tokens=1))
        return [self._score(ids, span) for ids, span in self.encode_checked(prompts, 0)]

    def _score(self, ids: list[int], span: tuple[int, int]) -> PromptScore:
        V = self.n_vocab
        chunk = max(1, min(self.n_batch, (1 << 25) // V))  # keeps the logits block near 128 MB
        ent, lps = [None], [None]
        self._seq_rm(0, 0)
        self._cached = []
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            self._decode(part, range(i, i + len(part)), [0] * len(part), True)
            self._cached.extend(part)
            nxt = ids[i + 1:i + len(part) + 1]  # the token each row predicts
            if nxt:
                logp = _log_softmax(self._rows(len(part))[: len(nxt)])
                ent.extend(np.maximum(-(np.exp(logp) * logp).sum(1), 0.0).tolist())
                lps.extend(logp[np.arange(len(nxt)), nxt].tolist())
        return PromptScore(list(ids), ent, lps, span, Usage(len(ids), 0, 2.0 * self.params * len(ids)))

    def close(self) -> None:
        if getattr(self, "llm", None) is not None:
            self._batch.close()
            self._ctx.close()
            self.llm.close()
            self.llm = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens a and b share."""
    m = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:m], dtype=np.int64) != np.asarray(b[:m], dtype=np.int64))
    return int(diff[0]) if len(diff) else m


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _pick(logits: np.ndarray, temperature: float, top_p: float, rngs, top_k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One token per row (argmax at temperature 0) and its log-prob under the raw
    model; row k draws from its own stream rngs[k]. top_k > 0 keeps each row's
    k most likely tokens before top_p."""
    mx = logits.max(1, keepdims=True)
    z = np.exp(logits - mx)
    lse = mx[:, 0] + np.log(z.sum(1))
    if temperature == 0:
        tok = logits.argmax(1)
    elif 0 < top_k < logits.shape[1]:  # draw among each row's k most likely tokens only
        head = np.argpartition(logits, -int(top_k), axis=1)[:, -int(top_k):]
        w = np.exp((np.take_along_axis(logits, head, 1) - mx) / temperature)
        tok = np.take_along_axis(head, np.array([[_draw(row, top_p, g)] for row, g in zip(w, rngs)]), 1)[:, 0]
    else:
        if temperature != 1.0:
            z = np.exp((logits - mx) / temperature)
        tok = np.array([_draw(row, top_p, g) for row, g in zip(z, rngs)])
    return tok, logits[np.arange(len(tok)), tok] - lse


def _draw(z: np.ndarray, top_p: float, rng) -> int:
    """A draw from unnormalised weights z; with top_p < 1, from the smallest set
    of most likely tokens whose mass reaches top_p (found by a growing partial sort)."""
    if top_p >= 1.0:
        c = np.cumsum(z, dtype=np.float64)
        return min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(z) - 1)
    total = float(z.sum())
    k = 64
    while True:
        k = min(k, len(z))
        head = np.argpartition(-z, k - 1)[:k] if k < len(z) else np.arange(len(z))
        head = head[np.argsort(-z[head], kind="stable")]
        c = np.cumsum(z[head], dtype=np.float64)
        if c[-1] >= top_p * total or k == len(z):
            keep = min(int(np.searchsorted(c, top_p * total, side="left")) + 1, k)
            j = int(np.searchsorted(c[:keep], rng.random() * c[keep - 1], side="right"))
            return int(head[min(j, keep - 1)])
        k *= 4
