"""The embedded torch engine: transformers, batched, CUDA when present.

Loading a GGUF with transformers de-quantizes every tensor (tens of seconds);
the converted weights are saved once to the cache, keyed by the GGUF's
sha256, so later starts take seconds.

generate() runs its own decoding loop rather than transformers' generate():
each distinct prompt is prefilled once, its KV cache copied to its n
samples (so the FLOP accounting, prefill counted once, is what actually
runs), rows that finish leave the batch, and every sampled token's log-prob
under the raw model (log-softmax of the unprocessed logits) comes for free.
Sampling draws from a torch.Generator seeded per call: a seed reproduces.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from collm.backends import seeding
from collm.backends.base import Backend, encode_prompt, find_stop
from collm.errors import CollmError
from collm.flops import usage_for
from collm.models import ResolvedModel, cache_dir, resolve
from collm.prompts import ChatTemplate, Prompt, to_utf8
from collm.types import Completion, Generation, PromptScore, SamplingParams, Usage

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
DEFAULT_CONTEXT = 8192  # cap on the context used, whatever the model allows


def _quiet_transformers():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def converted_dir(model: ResolvedModel) -> Path:
    """Where a GGUF's de-quantized weights are cached (a transformers folder)."""
    return cache_dir() / "torch" / model.sha256[:24]


def convert_gguf(model: ResolvedModel) -> Path:
    """De-quantize a GGUF with transformers once; later calls find the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = converted_dir(model)
    if (out / "config.json").is_file():
        return out
    print(f"converting {model.path.name} for torch (once, about a minute)...", file=sys.stderr, flush=True)
    folder, name = str(model.path.parent), model.path.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # transformers' many failure types for a bad file
        raise CollmError(f"transformers cannot load {model.path}: {e}") from e
    # The de-quantized model is an ordinary float model: drop the GGUF marker
    # that makes transformers refuse to save it.
    m.hf_quantizer = None
    if hasattr(m.config, "quantization_config"):
        del m.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".tmp-"))
    try:
        m.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.replace(out)
        except OSError:  # another process converted it meanwhile
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class TorchEngine(Backend):
    """transformers engine. max_batch caps the rows (prompts x n) decoded together."""

    name = "torch"
    tokenizes = True

    def __init__(self, model: ResolvedModel | str | None = None, device: str | None = None,
                 dtype: torch.dtype | None = None, max_batch: int = 64, n_ctx: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        self.resolved = model if isinstance(model, ResolvedModel) else resolve(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        folder = convert_gguf(self.resolved) if self.resolved.kind == "gguf" else self.resolved.path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as e:
            raise CollmError(f"cannot load the model in {folder}: {e}") from e
        tok, cfg = self.tokenizer, self.model.config
        self.max_batch = max_batch
        self.model_id = self.resolved.model_id
        self.params = self.resolved.params or sum(p.numel() for p in self.model.parameters())
        trained = getattr(cfg, "max_position_embeddings", None) or DEFAULT_CONTEXT
        self.context_length = min(trained, n_ctx or DEFAULT_CONTEXT)
        self.template = ChatTemplate(tok.chat_template, tok.bos_token or "", tok.eos_token or "")
        self.bos = tok.bos_token_id if getattr(tok, "add_bos_token", False) and tok.bos_token_id is not None else None
        self.eos_ids = self._end_ids()
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos_ids)
        self._eos = torch.tensor(sorted(self.eos_ids), device=self.device)

    def _end_ids(self) -> set[int]:
        tok, gen = self.tokenizer, self.model.generation_config
        ids = set()
        for x in (gen.eos_token_id, tok.eos_token_id):
            ids.update(x if isinstance(x, list) else [x] if x is not None else [])
        vocab = tok.get_vocab()
        ids.update(vocab[t] for t in END_TOKENS if t in vocab and vocab[t] in tok.all_special_ids)
        return ids

    # ---- tokens
    def _tokenize(self, text: str, special: bool) -> list[int]:
        if not text:
            return []
        to_utf8(text)  # a lone surrogate: a CollmError, not the tokenizer's own exception
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]

    def encode(self, prompt: Prompt) -> tuple[list[int], tuple[int, int]]:
        return encode_prompt(self.template, prompt, self._tokenize, self.bos)

    def _left_pad(self, seqs: list[list[int]]):
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---- generate
    def generate(self, prompts: Sequence[Prompt | str], n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None) -> list[Generation]:
        prompts, params = self.check_request(prompts, n, params)
        temperature, top_p, top_k, max_tokens = params.temperature, params.top_p, params.top_k, params.max_tokens
        seed, stop = params.seed, params.stop
        enc = self.encode_checked(prompts, max_tokens)
        first = seeding.firsts(offsets, len(enc))
        k = 1 if temperature == 0 else n  # greedy: the n samples are one, copied
        per = max(1, self.max_batch // k)  # prompts decoded together
        out: list[Generation] = []
        for i in range(0, len(enc), per):
            chunk = [ids for ids, _ in enc[i:i + per]]
            # each sample's own random stream (collm.backends.seeding); none when greedy
            gens = None if temperature == 0 else \
                [g for j, ids in enumerate(chunk) for g in seeding.streams(seed, ids, first[i + j], k)]
            rows = self._decode(chunk, k, temperature, top_p, top_k, max_tokens, gens, list(stop or []))
            for j, ids in enumerate(chunk):
                comps = rows[j * k:(j + 1) * k] if k == n else [_copy(rows[j]) for _ in range(n)]
                out.append(Generation(comps, usage_for(self.params, len(ids), [c.tokens for c in comps])))
        return out

    @torch.inference_mode()
    def _decode(self, seqs, n, temperature, top_p, top_k, max_tokens, gens, stop) -> list[Completion]:
        ids, mask = self._left_pad(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        cache, logits = res.past_key_values, res.logits[:, -1, :]
        if n > 1:  # the n samples of a prompt share its prefill
            cache.batch_repeat_interleave(n)
            logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        rows = logits.shape[0]
        next_pos = mask.sum(-1)  # position of the next token fed, per row
        live = torch.arange(rows, device=self.device)  # row index of each batch entry
        toks = [[] for _ in range(rows)]
        lps = [[] for _ in range(rows)]
        finish = ["length"] * rows
        for step in range(max_tokens):
            logits = logits.float()
            logp = torch.log_softmax(logits, -1)
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                u = torch.tensor([gens[r].random() for r in live.tolist()], dtype=torch.float64, device=self.device)
                nxt = self._sample(logits, temperature, top_p, top_k, u)
            lp = logp.gather(1, nxt[:, None])[:, 0]
            nxt_l, lp_l, live_l = nxt.tolist(), lp.tolist(), live.tolist()
            ended = torch.isin(nxt, self._eos).tolist()
            keep = []
            for k, r in enumerate(live_l):
                toks[r].append(nxt_l[k])
                lps[r].append(lp_l[k])
                if ended[k] or (stop and find_stop(self.tokenizer.decode(toks[r][-24:]), stop)[0] >= 0):
                    finish[r] = "stop"
                else:
                    keep.append(k)
            if not keep or step == max_tokens - 1:
                break
            if len(keep) < len(live_l):  # finished rows leave the batch
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                live, nxt, mask, next_pos = live[sel], nxt[sel], mask[sel], next_pos[sel]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
            res = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = res.past_key_values, res.logits[:, -1, :]
            next_pos = next_pos + 1
        return [self._completion(toks[r], lps[r], finish[r], stop) for r in range(rows)]

    @staticmethod
    def _sample(logits, temperature, top_p, top_k, u):
        """Draw one token per row by inverse CDF, row r at its own uniform u[r]
        (collm.backends.seeding). top_k > 0 keeps the k most likely tokens,
        then top_p the smallest head of those."""
        if 0 < top_k < logits.shape[-1]:
            kth = torch.topk(logits, int(top_k), -1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / temperature, -1).double()
        idx = None
        if top_p < 1.0:
            probs, idx = probs.sort(-1, descending=True)
            probs[(probs.cumsum(-1) - probs) >= top_p] = 0.0  # keep the smallest head reaching top_p
        c = probs.cumsum(-1)
        pick = torch.searchsorted(c, (u * c[:, -1])[:, None], right=True).clamp(max=c.shape[-1] - 1)
        return (pick if idx is None else idx.gather(1, pick))[:, 0]

    def _completion(self, toks: list[int], lps: list[float], finish: str, stop) -> Completion:
        body = toks[:-1] if finish == "stop" and toks and toks[-1] in self.eos_ids else toks
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        # matched: the stop string that ended it (a step boundary, not the answer's
        # end); it and what follows are dropped from the text, as in vLLM
        cut, matched = find_stop(text, stop)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(text=text, tokens=len(toks), logprob=float(sum(lps)), token_logprobs=lps, finish_reason=finish,
                          stop_reason=matched)

    # ---- score_prompt
    @torch.inference_mode()
    def score_prompt(self, prompts: Sequence[Prompt | str]) -> list[PromptScore]:
        prompts, _ = self.check_request(prompts, 1, SamplingParams(max_tokens=1))
        enc = self.encode_checked(prompts, 0)
        out = []
        if not enc:
            return out
        # prompts per forward pass: keeps the float32 logits block near 256 MB
        vocab = self.model.get_output_embeddings().weight.shape[0]
        per = max(1, min(self.max_batch, (1 << 26) // (vocab * max(len(ids) for ids, _ in enc))))
        for i in range(0, len(enc), per):
            chunk = enc[i:i + per]
            ids, mask = self._left_pad([c[0] for c in chunk])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1)
            ent = (-(logp.exp() * logp).sum(-1)).clamp(min=0.0)
            tlp = logp.gather(2, ids[:, 1:, None])[..., 0]
            width = ids.shape[1]
            for j, (seq, span) in enumerate(chunk):
                start = width - len(seq)  # left padding
                e = ent[j, start:].tolist()
                lp = tlp[j, start:].tolist()
                out.append(PromptScore(
                    token_ids=list(seq),
                    entropy=[None] + e,
                    logprobs=[None] + lp,
                    question_span=span,
                    usage=Usage(len(seq), 0, 2.0 * self.params * len(seq)),
                ))
        return out

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _copy(c: Completion) -> Completion:
    return Completion(c.text, c.tokens, c.logprob, list(c.token_logprobs), c.finish_reason, stop_reason=c.stop_reason)
