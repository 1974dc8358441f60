"""`collm ask "QUESTION"`: one question through the whole pipeline.

Without --n, the model's calibrated policy decides how many samples the
question deserves (difficulty -> allocation -> strategy); with --n, a fixed
best-of-N (or the --strategy asked for) is used. collm.pipeline says which
path a request takes.
"""

from __future__ import annotations

import json
import sys

from collm.answers.program import require_sandbox
from collm.api import Collm
from collm.cli.options import add_model_args, add_sampling_args, backend_from_args, sampling_from_args
from collm.errors import CollmError
from collm.strategies.options import add_strategy_args, strategy_kwargs


def add_parser(sub):
    p = sub.add_parser("ask", help="answer one question, spending compute where it helps")
    p.add_argument("question")
    add_model_args(p)
    p.add_argument("--n", type=int, default=None, help="fixed number of generations (default: the policy decides)")
    add_sampling_args(p)
    p.add_argument("--task", default="gsm8k", help="answer extractor/grader: gsm8k, number, math, choice")
    p.add_argument("--execute-code", action="store_true",
                   help="where a solution writes Python, run it (in a bubblewrap sandbox, 2 s CPU) and answer with "
                        "the last number it prints (task NAME+program); off by default: the code runs on this machine")
    p.add_argument("--policy", default=None,
                   help="allocation policy JSON (default: the shipped policy for the model; 'none' for no policy), "
                        "or a strategy policy JSON (the strategy per predicted difficulty bin, at --n/--budget generations)")
    p.add_argument("--budget", type=float, default=None, help="average samples per question the policy may spend")
    p.add_argument("--show", action="store_true", help="print every completion")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")

    add_strategy_args(p)
    return p


def _validate(args):
    if not args.question.strip():
        raise CollmError("the question is empty")
    if args.n is not None and args.n < 1:
        raise CollmError(f"--n must be at least 1 (got {args.n})")
    if args.budget is not None and args.budget <= 0:
        raise CollmError("--budget must be > 0")


def run(args) -> int:
    _validate(args)
    params = sampling_from_args(args)

    strategy, kwargs = strategy_kwargs(args)  # validates the search options against the strategy
    if args.strategy is None:
        strategy = None  # the pipeline decides: the policy, greedy or majority
    task = args.task + ("+program" if args.execute_code and not args.task.endswith("+program") else "")
    if task.endswith("+program"):  # this task runs the samples' code: refuse before loading a model
        require_sandbox()
    llm = Collm(backend=backend_from_args(args), task=task, policy=args.policy, sampling=params)
    ans = llm.ask([args.question], n=args.n, strategy=strategy, budget=args.budget, temperature=args.temperature,
                  **kwargs)[0]
    out = {"question": args.question, "model": llm.backend.model_name, "engine": llm.backend.name,
           **ans.to_dict(with_completions=args.show)}
    if args.json:
        print(json.dumps(out))
    else:
        _print(out, ans, sys.stdout)
    return 0


def _print(out, ans, f):
    votes = ", ".join(f"{a}: {c:g}" for a, c in sorted(out["votes"].items(), key=lambda kv: -kv[1])) or "none"
    u = out["usage"]
    print(f"answer: {out['answer']}", file=f)
    print(f"votes:  {votes}   ({out['n']} generations, {out['strategy']})", file=f)
    extra = {k: v for k, v in out.items() if k in ("difficulty", "difficulty_bin", "policy")}
    for k, v in extra.items():
        print(f"{k}: {v}", file=f)
    print(f"cost:   {u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens, {u['flops']:.3g} FLOPs", file=f)
    if "completions" in out:
        for j, c in enumerate(ans.completions):
            print(f"--- completion {j + 1} ({c.tokens} tokens, {c.finish_reason}, answer {c.answer})\n{c.text}", file=f)
