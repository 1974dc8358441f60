"""`collm eval --live`: real questions answered by a live model, measured.

    collm eval --live --model qwen2.5-coder-0.5b --dataset gsm8k --offset 640 --limit 40 \\
        --policy default --out live.jsonl              # the policy decides each question's budget
    collm eval --live ... --uniform 8 --out uni8.jsonl   # uniform best-of-8, for comparison
    collm eval --live --upstream http://127.0.0.1:8000/v1 --upstream-params 0.5B --dataset mine.jsonl \\
        --task number --policy policy.json --out live.jsonl   # your model behind vLLM, your questions

Each question is one request, as a server would see it: up to --concurrency
of them run at once on the engine (which batches them together), and each
one's latency runs from its start to its answer. Every finished question is
written to --out at once (one JSON line, fsync'ed), so a crash or Ctrl-C
keeps them and the same command resumes with the rest. The summary: accuracy
(95% bootstrap interval), generations, FLOPs and tokens per question, wall
time, questions and tokens per second, p50/p95 latency.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from tqdm import tqdm

from collm.answers import get_task
from collm.bank.evaluate import bootstrap_ci
from collm.bank.format import file_sha256
from collm.cli.options import check_model_args, problems_from_args, sampling_from_args
from collm.errors import CollmError
from collm.pipeline import params_for, plan_request, run_plan
from collm.policies import policy_for
from collm.prompts import DEFAULT_SYSTEM, Prompt
from collm.serve.scope import ScopedBackend
from collm.version import __version__

KEY = "collm_live_eval"
SAME = ("model", "dataset", "split", "method", "sampling", "task", "system")  # what a resume must match


def header(backend, args, params, task) -> dict:
    method = {"uniform": args.uniform} if args.uniform else {
        "policy": args.policy or "default", "budget": args.budget,
        "policy_sha256": file_sha256(args.policy) if args.policy not in (None, "default", "none") else None}
    return {KEY: 1, "model": backend.identity(), "engine": backend.name, "dataset": args.dataset, "split": args.split,
            "task": task.name, "system": args.system or DEFAULT_SYSTEM, "method": method, "sampling": params.to_dict(),
            "concurrency": args.concurrency, "collm_version": __version__,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def read_results(path: Path, head: dict) -> dict[int, dict]:
    """The questions already answered in `path` (by row), after checking its header."""
    done: dict[int, dict] = {}
    if not path.exists() or path.stat().st_size == 0:
        return done
    lines = path.read_bytes().split(b"\n")
    for ln, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except json.JSONDecodeError:
            if ln == len(lines) or (ln == len(lines) - 1 and not lines[-1]):
                continue  # the last write was cut by a crash: redone
            raise CollmError(f"{path}:{ln}: not valid JSON; not a results file this command can resume") from None
        if ln == 1:
            if not isinstance(d, dict) or KEY not in d:
                raise CollmError(f"{path} exists and is not a live evaluation's results; choose another --out")
            diff = [k for k in SAME if d.get(k) != head.get(k)]
            if diff:
                raise CollmError(f"{path} holds results of other settings ({', '.join(diff)} differ); "
                                 "use the same options to resume, or another --out")
            continue
        if not isinstance(d, dict) or not isinstance(d.get("i"), int) or "correct" not in d:
            raise CollmError(f"{path}:{ln}: not a question's result (no row 'i' or 'correct')")
        done[d["i"]] = d
    return done


def check(args) -> list:
    """Refuse bad options before any model loads; the questions to answer."""
    if args.budget is not None and args.budget < 1:
        raise CollmError(f"a budget of {args.budget:g} generations per question is below one greedy pass; "
                         "the minimum is 1")
    if args.uniform is not None and args.uniform < 1:
        raise CollmError(f"--uniform must be at least 1 (got {args.uniform})")
    if args.uniform and (args.policy or args.budget is not None):
        raise CollmError("--uniform N runs best-of-N: it takes no --policy or --budget")
    if args.concurrency < 1:
        raise CollmError(f"--concurrency must be at least 1 (got {args.concurrency})")
    sampling_from_args(args)
    check_model_args(args)
    problems = problems_from_args(args)
    get_task(args.task or problems[0].task)
    return problems


def run(args, backend, problems) -> int:
    params = sampling_from_args(args)
    task = get_task(args.task or problems[0].task)
    out = Path(args.out)
    head = header(backend, args, params, task)
    policy = None if args.uniform else policy_for(backend, args.policy or "default", task)
    plan = plan_request(n=args.uniform, temperature=args.temperature, policy=policy, default_n=1)
    run_params = params_for(plan, params, args.temperature)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        f = open(out, "a+b")
    except OSError as e:
        raise CollmError(f"cannot write {out}: {e.strerror or e}") from None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CollmError(f"{out} is being written by another process") from None
        done = read_results(out, head)
        _truncate_cut_line(f)
        if not done:
            f.seek(0)
            f.truncate()
            _write(f, head)
        todo = [p for p in problems if p.id not in done]
        t0 = time.perf_counter()
        new = _answer_all(backend, todo, task, plan, run_params, args, f) if todo else []
        wall = time.perf_counter() - t0
    rows = [done[p.id] if p.id in done else None for p in problems]
    got = {r["i"]: r for r in new}
    rows = [r if r is not None else got.get(p.id) for r, p in zip(rows, problems)]
    rows = [r for r in rows if r is not None]
    summary = summarize(rows, new, wall)
    label = f"uniform best-of-{args.uniform}" if args.uniform else f"policy {head['method']['policy']}"
    if args.json:
        print(json.dumps({"out": str(out), "method": head["method"], **summary}, indent=1))
    else:
        print(summary_text(label, summary, out))
    return 0


def _answer_all(backend, problems, task, plan, params, args, f) -> list[dict]:
    """Answer every problem, --concurrency at a time, writing each line as it finishes."""
    cancel = threading.Event()
    view = ScopedBackend(backend, cancel, None if backend.thread_safe else threading.Lock())
    lock = threading.Lock()
    new: list[dict] = []
    bar = tqdm(total=len(problems), unit="question", desc="live", file=sys.stderr, disable=args.quiet,
               dynamic_ncols=True)

    def one(p):
        t = time.perf_counter()
        prompt = Prompt(p.question, system=args.system or DEFAULT_SYSTEM, id=p.id)
        a = run_plan(plan, view, [prompt], task, params, budget=args.budget)[0]
        secs = time.perf_counter() - t
        line = {"i": p.id, "gold": p.gold, "answer": a.answer, "correct": bool(task.grade(a.answer, p.gold)),
                "n": a.n, "strategy": a.strategy, "prompt_tokens": a.usage.prompt_tokens,
                "cached_tokens": a.usage.cached_tokens, "completion_tokens": a.usage.completion_tokens,
                "flops": a.usage.flops, "seconds": round(secs, 3), "difficulty": a.extra.get("difficulty")}
        with lock:
            _write(f, line)
            new.append(line)
            bar.update(1)
        return line

    ex = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="collm-live")
    futures = set()
    queue = list(problems)
    try:
        while queue or futures:
            while queue and len(futures) < args.concurrency:
                futures.add(ex.submit(one, queue.pop(0)))
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                fut.result()
    except BaseException:
        cancel.set()  # the questions under way stop; the finished ones are saved
        ex.shutdown(wait=True, cancel_futures=True)
        bar.close()
        print(f"stopped: {len(new)} more question(s) saved in {f.name}; run the same command to resume",
              file=sys.stderr)
        raise
    ex.shutdown(wait=True)
    bar.close()
    return new


def _write(f, obj: dict) -> None:
    f.seek(0, os.SEEK_END)
    f.write((json.dumps(obj) + "\n").encode())
    f.flush()
    os.fsync(f.fileno())


def _truncate_cut_line(f) -> None:
    f.seek(0)
    data = f.read()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        f.truncate(cut)


def summarize(rows: list[dict], new: list[dict], wall: float) -> dict:
    ok = np.array([r["correct"] for r in rows], float)
    lo, hi = bootstrap_ci(ok) if len(ok) > 1 else (float(ok.mean()), float(ok.mean()))
    secs = np.array([r["seconds"] for r in rows], float)
    tokens = sum(r["completion_tokens"] for r in new)
    return {"questions": len(rows), "accuracy": float(ok.mean()), "accuracy_95": [lo, hi],
            "generations": float(np.mean([r["n"] for r in rows])),
            "flops": float(np.mean([r["flops"] for r in rows])),
            "completion_tokens": float(np.mean([r["completion_tokens"] for r in rows])),
            "latency_p50": float(np.percentile(secs, 50)), "latency_p95": float(np.percentile(secs, 95)),
            "answered_now": len(new), "wall": wall,
            "questions_per_s": len(new) / wall if wall > 0 and new else None,
            "tokens_per_s": tokens / wall if wall > 0 and new else None}


def summary_text(label: str, s: dict, out: Path) -> str:
    lines = [f"{label}: {s['questions']} questions ({s['answered_now']} answered now, the rest from {out})",
             f"  accuracy {s['accuracy']:.3f} [{s['accuracy_95'][0]:.3f}, {s['accuracy_95'][1]:.3f}]  "
             f"generations/question {s['generations']:.2f}  FLOPs/question {s['flops']:.3g}  "
             f"tokens/question {s['completion_tokens']:.0f}",
             f"  latency p50 {s['latency_p50']:.1f} s  p95 {s['latency_p95']:.1f} s"]
    if s["questions_per_s"] is not None:
        lines.append(f"  wall {s['wall']:.0f} s for {s['answered_now']} questions: "
                     f"{s['questions_per_s']:.3f} questions/s, {s['tokens_per_s']:.1f} tokens/s")
    return "\n".join(lines)

