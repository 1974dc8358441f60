"""`collm demo`: the main job on the embedded default model.

A handful of GSM8K test questions the shipped policy never saw (rows 640 and
on: the shared bank it was calibrated on holds rows 0-639), answered three
ways: greedy, uniform best-of-N majority, and collm's adaptive policy at equal
compute: the policy may spend, in all, the FLOPs best-of-N just spent on the
same questions (a hard cap: collm.budget holds every request's worst case
until its real cost is known, so it spends at most that). For each question
it prints the answers, votes, correctness and cost, then a summary line per
method and adaptive's FLOPs and wall time against best-of-N's.
"""

from __future__ import annotations

import sys
import time

from collm.allocation.live import least_flops
from collm.api import Collm
from collm.cli.options import add_model_args, add_sampling_args, backend_from_args, sampling_from_args
from collm.datasets import load_dataset
from collm.errors import CollmError
from collm.types import DEFAULT_TEMPERATURE


def add_parser(sub):
    p = sub.add_parser("demo", help="greedy vs best-of-N vs adaptive on a few held-out GSM8K questions")
    add_model_args(p)
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--offset", type=int, default=640, help="first GSM8K test row (rows < 640 calibrated the policy)")
    p.add_argument("--n", type=int, default=4, help="N of the uniform best-of-N baseline")
    p.add_argument("--budget", type=float, default=None,
                   help="average generations per question for the adaptive policy, in place of the default "
                        "budget: the FLOPs best-of-N spent (equal compute)")
    add_sampling_args(p, temperature=DEFAULT_TEMPERATURE)
    return p


def _mark(ok: bool) -> str:
    return "ok " if ok else "-- "


def run(args) -> int:
    if args.questions < 1 or args.n < 1:
        raise CollmError("--questions and --n must be at least 1")
    params = sampling_from_args(args)

    problems = load_dataset("gsm8k", "test", offset=args.offset, limit=args.questions)
    if not problems:
        raise CollmError(f"no GSM8K test rows at offset {args.offset}")
    t0 = time.time()
    llm = Collm(backend=backend_from_args(args), task="gsm8k", sampling=params)
    print(f"model {llm.backend.model_name} ({llm.backend.params / 1e6:.0f}M params), engine {llm.backend.name}, "
          f"loaded in {time.time() - t0:.1f}s", file=sys.stderr)
    qs = [p.question for p in problems]
    runs, raised = {}, None
    for label, kwargs in (("greedy", {"n": 1}), (f"best-of-{args.n}", {"n": args.n}), ("adaptive", None)):
        if kwargs is None:  # equal compute: what best-of-N spent, unless --budget says otherwise
            spent = sum(a.usage.flops for a in runs[f"best-of-{args.n}"][0]) / len(qs)
            # best-of-N's prompts came from the prefix cache; the policy's cap holds
            # a worst-case greedy pass (whole prompt, max_tokens) per question
            least = least_flops(llm.backend, qs, llm.sampling)
            if spent < least:
                raised = least
            kwargs = {"budget": args.budget} if args.budget is not None else {"flops": max(spent, least)}
        if hasattr(llm.backend, "clear_cache"):
            llm.backend.clear_cache()  # each method starts cold and pays its own prompts' prefill
        t = time.time()
        print(f"[{label}] answering {len(qs)} questions ...", file=sys.stderr, flush=True)
        answers = llm.ask(qs, **kwargs)
        runs[label] = (answers, time.time() - t)

    task = llm.task
    # each cell: correct (ok / --), the answer, its votes / generations spent
    print(f"\n{'row':>4}  {'gold':>8}  " + "  ".join(f"{lab:<20}" for lab in runs) + "  question")
    for j, p in enumerate(problems):
        cells = []
        for lab, (answers, _) in runs.items():
            a = answers[j]
            ok = task.grade(a.answer, p.gold)
            votes = a.votes.get(a.answer, 0) if a.answer is not None else 0
            cells.append(f"{_mark(ok)}{str(a.answer):>9} {votes:g}/{a.n}")
        q = " ".join(p.question.split())
        print(f"{p.id:>4}  {p.gold:>8}  " + "  ".join(f"{c:<20}" for c in cells) + f"  {q[:48]}...")
    print()
    greedy_flops = sum(a.usage.flops for a in runs["greedy"][0]) / len(problems)
    for lab, (answers, secs) in runs.items():
        acc = sum(task.grade(a.answer, p.gold) for a, p in zip(answers, problems)) / len(problems)
        flops = sum(a.usage.flops for a in answers) / len(problems)
        samples = sum(a.n for a in answers) / len(problems)
        print(f"summary {lab:<12} accuracy {acc:5.1%}  samples/question {samples:5.2f}  "
              f"FLOPs/question {flops:.3g} ({flops / greedy_flops:.1f}x greedy)  wall {secs:.0f}s")
    (uni, t_uni), (ada, t_ada) = runs[f"best-of-{args.n}"], runs["adaptive"]
    f_uni, f_ada = (sum(a.usage.flops for a in answers) for answers in (uni, ada))
    if args.budget is not None:
        given = f"budget {args.budget:g} generations/question"
    elif raised is not None:
        given = (f"budget: the FLOPs best-of-{args.n} spent, raised to {raised:.3g}/question, "
                 f"one worst-case greedy pass (prompt + {llm.sampling.max_tokens} tokens)")
    else:
        given = f"budget: the FLOPs best-of-{args.n} spent"
    print(f"adaptive / best-of-{args.n}: FLOPs {f_ada / f_uni:.2f}x, wall {t_ada / t_uni:.2f}x ({given})")
    return 0
