"""Batched sampling throughput: collm's engines against direct library calls.

For each model (SmolLM2-135M and, when pulled, Qwen2.5-Coder-0.5B) and each
n in --n, the same GSM8K prompts are sampled (temperature 0.8, top-p 1,
max_tokens fixed) four ways, side by side:

    hf        a direct transformers `model.generate(..., num_return_sequences=n)` call
    torch     collm's torch engine, `generate(prompts, n=n)`
    llama     a direct llama-cpp-python loop: `create_completion` n times per prompt
    llamacpp  collm's llama.cpp engine, `generate(prompts, n=n)`

Throughput is generated tokens per second of wall time. The four runs of a
configuration are interleaved and repeated (--repeats); the best of each is
kept, so a burst of load from other processes hurts less. The direct
transformers call uses the same weights as collm's torch engine (the
de-quantized GGUF); the direct llama.cpp loop uses its own Llama object on
the same GGUF with the same thread count.

Target: each collm engine >= 0.95 x its direct counterpart.

    python bench/throughput.py                       # both models when installed
    python bench/throughput.py --models smollm2-135m --n 1 8 --max-tokens 16
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collm import models  # noqa: E402
from collm.prompts import Prompt  # noqa: E402

TEMPERATURE, TOP_P = 0.8, 1.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {gpu}, {platform.system()} {platform.release()}"


def questions(k: int) -> list[str]:
    try:
        from collm.datasets import load_dataset

        return [p.question for p in load_dataset("gsm8k", "test", limit=k)]
    except Exception:  # the benchmark does not depend on the datasets package
        return ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?"] * k


class Runs:
    """The four ways to sample, each returning the number of generated tokens."""

    def __init__(self, model: str, threads: int):
        import llama_cpp
        import torch

        from collm.backends.llamacpp_engine import LlamaCppEngine
        from collm.backends.torch_engine import TorchEngine

        self.torch_engine = TorchEngine(model)
        self.llama_engine = LlamaCppEngine(model, n_threads=threads)
        self.llama = llama_cpp.Llama(model_path=str(self.llama_engine.resolved.path), n_ctx=self.llama_engine.llm.n_ctx(),
                                     n_threads=threads, n_threads_batch=threads, verbose=False)
        self.torch = torch

    def hf(self, prompts, n, max_tokens, seed):
        """transformers' own generate on the same model, prompts left-padded."""
        eng, torch = self.torch_engine, self.torch
        ids, mask = eng._left_pad([eng.encode(p)[0] for p in prompts])
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = eng.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                max_new_tokens=max_tokens, num_return_sequences=n, pad_token_id=eng.pad_id,
                eos_token_id=sorted(eng.eos_ids),
            )
        gen = out[:, ids.shape[1]:].tolist()
        total = 0
        for row in gen:  # tokens up to and including the first end token
            ends = [i for i, t in enumerate(row) if t in eng.eos_ids]
            total += ends[0] + 1 if ends else len(row)
        return total

    def torch_collm(self, prompts, n, max_tokens, seed):
        gens = self.torch_engine.generate(prompts, n=n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens, seed=seed)
        return sum(c.tokens for g in gens for c in g.completions)

    def llama_direct(self, prompts, n, max_tokens, seed):
        """create_completion n times per prompt (it reuses the prompt's KV cache itself)."""
        total = 0
        for p in prompts:
            ids = self.llama_engine.encode(p)[0]
            for i in range(n):
                r = self.llama.create_completion(ids, max_tokens=max_tokens, temperature=TEMPERATURE, top_p=TOP_P,
                                                 top_k=0, min_p=0.0, repeat_penalty=1.0, seed=seed + i)
                total += r["usage"]["completion_tokens"] + (r["choices"][0]["finish_reason"] == "stop")
        return total

    def llama_collm(self, prompts, n, max_tokens, seed):
        gens = self.llama_engine.generate(prompts, n=n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens, seed=seed)
        return sum(c.tokens for g in gens for c in g.completions)

    def close(self):
        self.torch_engine.close()
        self.llama_engine.close()
        self.llama.close()


WAYS = [("hf", "hf"), ("torch", "torch_collm"), ("llama", "llama_direct"), ("llamacpp", "llama_collm")]


def bench(args) -> list[dict]:
    rows = []
    names = args.models or [m for m in ("smollm2-135m", "qwen2.5-coder-0.5b") if models.installed(m)]
    prompts = [Prompt(q) for q in questions(args.prompts)]
    jsonl = open(args.out.with_suffix(".jsonl"), "a")
    for name in names:
        print(f"loading {name}...", file=sys.stderr, flush=True)
        runs = Runs(name, args.threads)
        # warm-up (buffers are allocated on first use) on another question: the
        # chat template's prefix is then cached alike by both llama.cpp runs
        warm = [Prompt("What is 12 + 30?")]
        for _, fn in WAYS:
            getattr(runs, fn)(warm, 1, 2, 0)
        for n in args.n:
            best = {k: 0.0 for k, _ in WAYS}
            toks = {k: 0 for k, _ in WAYS}
            for rep in range(args.repeats):
                order = WAYS if rep % 2 == 0 else WAYS[::-1]
                for key, fn in order:
                    t0 = time.perf_counter()
                    tokens = getattr(runs, fn)(prompts, n, args.max_tokens, 1000 * rep + 1)
                    dt = time.perf_counter() - t0
                    rate = tokens / dt
                    print(f"  {name} n={n} rep={rep} {key:9s} {tokens:5d} tokens {dt:7.1f}s {rate:7.1f} tok/s "
                          f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                    if rate > best[key]:
                        best[key], toks[key] = rate, tokens
            row = {"model": name, "n": n, "prompts": len(prompts), "max_tokens": args.max_tokens, **{f"{k}_tok_s": round(v, 1) for k, v in best.items()},
                   "torch_ratio": round(best["torch"] / best["hf"], 3), "llamacpp_ratio": round(best["llamacpp"] / best["llama"], 3),
                   "tokens": toks}
            rows.append(row)
            jsonl.write(json.dumps(row) + "\n")
            jsonl.flush()
            write_markdown(args, rows)
        runs.close()
    return rows


def write_markdown(args, rows):
    cmd = "python bench/throughput.py " + " ".join(sys.argv[1:])
    lines = [
        "# Sampling throughput: collm engines vs direct library calls",
        "",
        f"- command: `{cmd}`",
        f"- machine: {args.machine}",
        f"- date: {args.date}; load average at start {args.load0:.1f} (the machine is shared: other jobs ran meanwhile)",
        f"- {args.prompts} GSM8K prompts x n samples, temperature {TEMPERATURE}, top-p {TOP_P}, max_tokens {args.max_tokens}, "
        f"best of {args.repeats} interleaved runs; llama.cpp with {args.threads} threads",
        "- tok/s = generated tokens / wall seconds; ratio = collm / direct (target >= 0.95)",
        "",
        "| model | n | transformers generate | collm torch | ratio | llama-cpp-python loop | collm llamacpp | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['n']} | {r['hf_tok_s']:.1f} | {r['torch_tok_s']:.1f} | {r['torch_ratio']:.2f} | "
                     f"{r['llama_tok_s']:.1f} | {r['llamacpp_tok_s']:.1f} | {r['llamacpp_ratio']:.2f} |")
    args.out.write_text("\n".join(lines) + "\n" + args.notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="default: smollm2-135m and qwen2.5-coder-0.5b when installed")
    ap.add_argument("--n", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="llama.cpp threads for both llama runs (default: collm's choice, the idle cores)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "throughput.md")
    ap.add_argument("--notes", default="", help="text appended under the table")
    args = ap.parse_args(argv)
    args.machine = machine()
    args.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.load0 = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.threads is None:
        from collm.backends.llamacpp_engine import default_threads

        args.threads = default_threads()
    bench(args)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
