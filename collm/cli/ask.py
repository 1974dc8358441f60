"""`collm ask "QUESTION"`: one question through the whole pipeline.

Without --n, the model's calibrated policy decides how many samples the
question deserves (difficulty -> allocation -> strategy); with --n, a fixed
best-of-N (or the --strategy asked for) is used.
"""

from __future__ import annotations

import json
import sys

from collm.backends.base import DEFAULT_TOP_K
from collm.errors import CollmError


def add_parser(sub):
    p = sub.add_parser("ask", help="answer one question, spending compute where it helps")
    p.add_argument("question")
    p.add_argument("--model", default=None, help="model name, GGUF path or HF folder (default: best installed)")
    p.add_argument("--engine", choices=["torch", "llamacpp"], default=None, help="default: the faster for the device")
    p.add_argument("--n", type=int, default=None, help="fixed number of generations (default: the policy decides)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=None, help="default 0.8 when sampling, 0 for a single greedy pass")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                   help=f"sample from the k most likely tokens (default {DEFAULT_TOP_K}, as the shipped policies were calibrated; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="gsm8k", help="answer extractor/grader: gsm8k, number, math, choice")
    p.add_argument("--execute-code", action="store_true",
                   help="where a solution writes Python, run it (in a bubblewrap sandbox, 2 s CPU) and answer with "
                        "the last number it prints (task NAME+program); off by default: the code runs on this machine")
    p.add_argument("--policy", default=None,
                   help="allocation policy JSON (default: the shipped policy for the model; 'none' for uniform), "
                        "or a strategy policy JSON (the strategy per predicted difficulty bin, at --n/--budget generations)")
    p.add_argument("--budget", type=float, default=None, help="average samples per question the policy may spend")
    p.add_argument("--show", action="store_true", help="print every completion")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    from collm.strategies.options import add_strategy_args

    add_strategy_args(p)
    return p


def _validate(args):
    if not args.question.strip():
        raise CollmError("the question is empty")
    if args.n is not None and args.n < 1:
        raise CollmError(f"--n must be at least 1 (got {args.n})")
    if args.max_tokens < 1:
        raise CollmError(f"--max-tokens must be at least 1 (got {args.max_tokens})")
    if args.temperature is not None and args.temperature < 0:
        raise CollmError("--temperature must be >= 0")
    if args.top_k < 0:
        raise CollmError(f"--top-k must be >= 0, 0 for the whole vocabulary (got {args.top_k})")
    if args.budget is not None and args.budget <= 0:
        raise CollmError("--budget must be > 0")


def run(args) -> int:
    _validate(args)
    from collm.api import Collm

    strategy = getattr(args, "strategy", None)
    if strategy is None and args.policy not in (None, "none", "default"):
        from collm.strategies.select import is_strategy_policy

        if is_strategy_policy(args.policy):  # a per-bin strategy policy: the budget is N generations
            strategy = "auto"
    task = args.task + ("+program" if args.execute_code and not args.task.endswith("+program") else "")
    llm = Collm(args.model, args.engine, task=task, policy=args.policy, max_tokens=args.max_tokens,
                temperature=0.8 if args.temperature is None else args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    if strategy == "auto" and args.n is None:
        args.n = int(args.budget) if args.budget is not None else 8
    if args.n is None and strategy is None and args.policy != "none":
        ans = llm.ask([args.question], budget=args.budget)[0]
    else:
        from collm.strategies.options import strategy_kwargs

        n = args.n or 1
        if strategy is None:  # one greedy pass, or majority of n samples at the temperature asked for
            strategy = "greedy" if n == 1 and not args.temperature else "majority"
        args.strategy = strategy
        strategy, kwargs = strategy_kwargs(args)  # validates the search options against the strategy
        ans = llm.ask([args.question], n=n, strategy=strategy, **kwargs)[0]
    out = {"question": args.question, "model": llm.backend.model_name, "engine": llm.backend.name, **ans.to_dict(with_completions=args.show)}
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
