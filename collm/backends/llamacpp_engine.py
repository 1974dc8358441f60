"""The llama.cpp engine for CPUs (llama-cpp-python), behind the same interface.

On a CPU it runs these quantized GGUF models about 4x faster per stream than
transformers. It decodes one stream at a time: a prompt is prefilled once
and its n samples continue from its KV cache (the cache is truncated back to
the prompt between samples); consecutive prompts also reuse their common
prefix (the chat template's system turn). Sampling, per-token log-probs and
prompt entropies are computed in numpy from llama.cpp's raw logits, with a
numpy Generator seeded per call: a seed reproduces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from collm.backends import encode_prompt, find_stop
from collm.backends.base import Backend
from collm.errors import CollmError
from collm.flops import usage_for
from collm.models import ResolvedModel, resolve
from collm.prompts import ChatTemplate, Prompt
from collm.types import Completion, Generation, PromptScore, Usage

DEFAULT_CONTEXT = 8192  # the KV cache size, capped by the model's trained context


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LlamaCppEngine(Backend):
    """llama-cpp-python engine (CPU). n_threads defaults to every core available."""

    name = "llamacpp"

    def __init__(self, model: ResolvedModel | str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, n_batch: int = 512):
        import llama_cpp

        self._lib = llama_cpp
        self.resolved = model if isinstance(model, ResolvedModel) else resolve(model)
        if self.resolved.kind != "gguf":
            raise CollmError(f"the llama.cpp engine needs a .gguf file, not {self.resolved.path}")
        threads = n_threads or cpu_count()
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.resolved.path), n_ctx=n_ctx or DEFAULT_CONTEXT, n_batch=n_batch,
                n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise CollmError(f"llama.cpp cannot load {self.resolved.path}: {e}") from e
        llm = self.llm
        self.model_id = self.resolved.model_id
        self.params = self.resolved.params or int(llama_cpp.llama_model_n_params(llm.model))
        self.context_length = min(llm.n_ctx(), int(llama_cpp.llama_model_n_ctx_train(llm.model)))
        self.n_vocab = llm.n_vocab()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.eos_ids = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.bos = llm.token_bos() if adds_bos and llm.token_bos() >= 0 else None
        piece = lambda t: llm.detokenize([t], special=True).decode("utf-8", "replace") if t >= 0 else ""  # noqa: E731
        self.template = ChatTemplate(llm.metadata.get("tokenizer.chat_template"), piece(llm.token_bos()), piece(llm.token_eos()))

    # ---- tokens
    def _tokenize(self, text: str, special: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special) if text else []

    def encode(self, prompt: Prompt) -> tuple[list[int], tuple[int, int]]:
        return encode_prompt(self.template, prompt, self._tokenize, self.bos)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids, special=True).decode("utf-8", "replace")

    def _encode_checked(self, prompts: list[Prompt], max_tokens: int):
        enc = [self.encode(p) for p in prompts]
        for ids, _ in enc:
            if len(ids) + max_tokens > self.context_length:
                raise CollmError(
                    f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) is beyond the model's "
                    f"context of {self.context_length} tokens"
                )
        return enc

    # ---- KV cache
    def _logits(self) -> np.ndarray:
        """A view of the last decoded position's logits (valid until the next decode)."""
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _prefill(self, ids: list[int]) -> np.ndarray:
        """Bring the KV cache to exactly `ids`, reusing the common prefix; the last logits."""
        llm = self.llm
        have, want = llm.input_ids[: llm.n_tokens], np.asarray(ids, dtype=llm.input_ids.dtype)
        m = min(len(have), len(want))
        diff = np.flatnonzero(have[:m] != want[:m])
        same = int(diff[0]) if len(diff) else m
        same = min(same, len(ids) - 1)  # decode at least one token for its logits
        llm.n_tokens = same
        llm.eval(ids[same:])  # drops the stale cache after `same`, then decodes
        return self._logits().copy()

    # ---- generate
    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, seed: int | None = None, stop: Sequence[str] | None = None) -> list[Generation]:
        prompts = self.check_request(prompts, n, max_tokens, temperature, top_p)
        enc = self._encode_checked(prompts, max_tokens)
        rng = np.random.default_rng(seed)
        stop = list(stop or [])
        out = []
        for ids, _ in enc:
            first = self._prefill(ids)
            if temperature == 0:  # greedy: the n samples are one
                one = self._sample_one(ids, first, 0.0, top_p, max_tokens, rng, stop)
                comps = [Completion(one.text, one.tokens, one.logprob, list(one.token_logprobs), one.finish_reason,
                                     stop_reason=one.stop_reason) for _ in range(n)]
            else:
                comps = [self._sample_one(ids, first, temperature, top_p, max_tokens, rng, stop) for _ in range(n)]
            out.append(Generation(comps, usage_for(self.params, len(ids), [c.tokens for c in comps])))
        return out

    def _sample_one(self, ids, first, temperature, top_p, max_tokens, rng, stop) -> Completion:
        llm, eos = self.llm, self.eos_ids
        llm.n_tokens = len(ids)  # back to the prompt: the next eval drops the last sample
        logits = first
        toks, lps = [], []
        finish = "length"
        for step in range(max_tokens):
            tok, lp = self._pick(logits, temperature, top_p, rng)
            toks.append(tok)
            lps.append(lp)
            if tok in eos or (stop and find_stop(self.detokenize(toks[-24:]), stop)[0] >= 0):
                finish = "stop"
                break
            if step == max_tokens - 1:
                break
            llm.eval((tok,))
            logits = self._logits()
        body = toks[:-1] if toks and toks[-1] in eos else toks
        text = self.detokenize(body)
        # matched: the stop string that ended it (a step boundary, not the answer's
        # end); it and what follows are dropped from the text, as in vLLM
        cut, matched = find_stop(text, stop)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(text=text, tokens=len(toks), logprob=float(sum(lps)), token_logprobs=lps, finish_reason=finish,
                          stop_reason=matched)

    @staticmethod
    def _pick(logits: np.ndarray, temperature: float, top_p: float, rng) -> tuple[int, float]:
        """Draw a token (argmax at temperature 0); return it with its raw-model log-prob."""
        mx = float(logits.max())
        z = np.exp(logits - mx)
        lse = mx + float(np.log(z.sum()))
        if temperature == 0:
            tok = int(logits.argmax())
            return tok, float(logits[tok]) - lse
        if temperature != 1.0:
            z = np.exp((logits - mx) / temperature)
        if top_p < 1.0:
            tok = _top_p_draw(z, top_p, rng)
        else:
            c = np.cumsum(z, dtype=np.float64)
            tok = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
            tok = min(tok, len(z) - 1)
        return tok, float(logits[tok]) - lse

    # ---- score_prompt
    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]:
        prompts = self.check_request(prompts, 1, 1)
        return [self._score(ids, span) for ids, span in self._encode_checked(prompts, 0)]

    def _score(self, ids: list[int], span: tuple[int, int]) -> PromptScore:
        llm, V = self.llm, self.n_vocab
        chunk = max(1, min(llm.n_batch, (1 << 25) // V))  # keeps the logits block near 128 MB
        ent, lps = [None], [None]
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            llm._batch.set_batch(batch=part, n_past=i, logits_all=True)
            llm._ctx.decode(llm._batch)
            llm.input_ids[i:i + len(part)] = part
            llm.n_tokens = i + len(part)
            rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(part) * V,)).reshape(len(part), V)
            nxt = ids[i + 1:i + len(part) + 1]  # the token each row predicts
            rows = rows[: len(nxt)]
            if len(nxt):
                mx = rows.max(1, keepdims=True)
                z = rows - mx
                lse = np.log(np.exp(z).sum(1, keepdims=True))
                logp = z - lse
                ent.extend(np.maximum(-(np.exp(logp) * logp).sum(1), 0.0).tolist())
                lps.extend(logp[np.arange(len(nxt)), nxt].tolist())
        return PromptScore(list(ids), ent, lps, span, Usage(len(ids), 0, 2.0 * self.params * len(ids)))

    def close(self) -> None:
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None


def _top_p_draw(z: np.ndarray, top_p: float, rng) -> int:
    """Nucleus sampling on unnormalised weights z: the smallest set of most
    likely tokens whose mass reaches top_p, found by growing a partial sort."""
    total = float(z.sum())
    k = 64
    while True:
        k = min(k, len(z))
        head = np.argpartition(-z, k - 1)[:k] if k < len(z) else np.arange(len(z))
        head = head[np.argsort(-z[head], kind="stable")]
        c = np.cumsum(z[head], dtype=np.float64)
        if c[-1] >= top_p * total or k == len(z):
            keep = int(np.searchsorted(c, top_p * total, side="left")) + 1
            keep = min(keep, k)
            c = c[:keep]
            j = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
            return int(head[min(j, keep - 1)])
        k *= 4

