"""Live wall-clock of an adaptive policy against uniform majority voting, on
real held-out GSM8K questions (test rows >= 640), same model, same machine,
side by side in one run.

    python bench/live.py --uniform 8 --policy bench/results/live/marginal_b4.policy.json \\
        --questions 40 --blocks 2 --concurrency 16

Each configuration is `collm eval --live` (a subprocess: its own model
load, not timed). The questions are cut into --blocks blocks, and the
configurations take turns in ABBA order (block 1: A then B, block 2: B then
A, ...), so a drift in the machine's load falls on both alike. A
configuration's wall time is the sum over its blocks; p50/p95 are over its
questions' own latencies (start to answer, --concurrency at a time). The
policies are calibrated on the shared bank (test rows 0-639) at the budget
where their cross-validated accuracy matches uniform maj@N's (see
bench/results/allocation.md); the live accuracy on 40 questions is noisy
(a 95% interval of about +-0.14), so the table also gives each
configuration's generations and FLOPs per question, which are not.

Results: bench/results/live.md (a table per run, appended) and the per-question
files under bench/results/live/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "live"


def run_block(cfg: dict, args, offset: int, limit: int) -> dict:
    cmd = [sys.executable, "-m", "collm", "eval", "--live", "--model", args.model, "--dataset", "gsm8k",
           "--offset", str(offset), "--limit", str(limit), "--concurrency", str(args.concurrency),
           "--out", str(cfg["out"]), "--json", "--quiet"] + cfg["flags"]
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{cfg['label']} failed:\n{p.stderr[-2000:]}")
    s = json.loads(p.stdout)
    print(f"  {cfg['label']:<28} rows {offset}-{offset + limit - 1}: wall {s['wall']:.0f} s "
          f"(load {load:.1f}), accuracy so far {s['accuracy']:.3f}", flush=True)
    return {"wall": s["wall"], "load": load}


def summary(cfg: dict, walls: list[float]) -> dict:
    lines = [json.loads(x) for x in cfg["out"].read_text().splitlines()[1:] if x.strip()]
    secs = np.array([r["seconds"] for r in lines])
    tokens = sum(r["completion_tokens"] for r in lines)
    return {"label": cfg["label"], "questions": len(lines), "accuracy": np.mean([r["correct"] for r in lines]),
            "gens": np.mean([r["n"] for r in lines]), "flops": np.mean([r["flops"] for r in lines]),
            "wall": sum(walls), "p50": np.percentile(secs, 50), "p95": np.percentile(secs, 95),
            "tok_s": tokens / sum(walls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--uniform", type=int, required=True, help="N of uniform majority of N (configuration A)")
    ap.add_argument("--policy", required=True, help="the adaptive policy file (configuration B)")
    ap.add_argument("--budget", type=float, default=None, help="its budget, where it is not the file's own")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--offset", type=int, default=640)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tag", default=None, help="names the result files (default: u<N>_<policy file stem>)")
    args = ap.parse_args()
    if args.offset < 640:
        sys.exit("GSM8K test rows below 640 calibrated the policies: evaluate on rows >= 640")
    tag = args.tag or f"u{args.uniform}_{Path(args.policy).stem.replace('.policy', '')}"
    OUT.mkdir(parents=True, exist_ok=True)
    a = {"label": f"uniform maj@{args.uniform}", "flags": ["--uniform", str(args.uniform)],
         "out": OUT / f"{tag}.uniform.jsonl"}
    b = {"label": f"adaptive {Path(args.policy).stem.replace('.policy', '')}",
         "flags": ["--policy", args.policy] + (["--budget", str(args.budget)] if args.budget else []),
         "out": OUT / f"{tag}.adaptive.jsonl"}
    for cfg in (a, b):  # a fresh comparison: walls of earlier runs are not known
        cfg["out"].unlink(missing_ok=True)
    size = -(-args.questions // args.blocks)
    walls = {id(a): [], id(b): []}
    loads = []
    started = dt.datetime.now(dt.timezone.utc)
    for k in range(args.blocks):
        off = args.offset + k * size
        lim = min(size, args.offset + args.questions - off)
        for cfg in ((a, b) if k % 2 == 0 else (b, a)):
            r = run_block(cfg, args, off, lim)
            walls[id(cfg)].append(r["wall"])
            loads.append(r["load"])
    sa, sb = summary(a, walls[id(a)]), summary(b, walls[id(b)])
    cmd = "python bench/live.py " + " ".join(sys.argv[1:])
    lines = [f"## maj@{args.uniform} against {sb['label']} ({started:%Y-%m-%d %H:%M} UTC)", "",
             f"- command: `{cmd}`",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU; "
             f"model {args.model} on llama.cpp; load average at each block's start {min(loads):.1f}-{max(loads):.1f}",
             f"- GSM8K test rows {args.offset}-{args.offset + args.questions - 1}, {args.blocks} blocks in ABBA order, "
             f"{args.concurrency} questions at once", "",
             "| configuration | questions | accuracy | generations/q | FLOPs/q | wall s | p50 s | p95 s | tokens/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in (sa, sb):
        lines.append(f"| {s['label']} | {s['questions']} | {s['accuracy']:.3f} | {s['gens']:.2f} | {s['flops']:.3g} | "
                     f"{s['wall']:.0f} | {s['p50']:.1f} | {s['p95']:.1f} | {s['tok_s']:.1f} |")
    lines += ["", f"Adaptive / uniform: wall {sb['wall'] / sa['wall']:.2f}x, FLOPs {sb['flops'] / sa['flops']:.2f}x, "
              f"p95 {sb['p95'] / sa['p95']:.2f}x.", ""]
    md = ROOT / "bench" / "results" / "live.md"
    if not md.exists():
        md.write_text("# Live wall-clock: adaptive against uniform majority (bench/live.py)\n\n")
    with open(md, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
