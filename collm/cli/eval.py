"""`collm eval --bank FILE`: what a sample bank says, at no model cost:
uniform majority-vote curves with 95% bootstrap intervals, greedy accuracy,
pass@k coverage, Snell et al.'s five difficulty bins and the oracle
per-problem frontier (the upper bound for any per-problem allocation);
with --policy, how allocation policies do on the same draws.

`collm eval --live --model M|--upstream URL --dataset D --out FILE [--policy P --budget B | --uniform N]`:
real questions answered live, with accuracy, cost, wall time and latency
(collm.cli.live)."""

from __future__ import annotations

import json
import sys

from collm.answers.program import require_sandbox
from collm.bank.evaluate import cost_to_reach, evaluate
from collm.bank.format import load_bank, merge_banks
from collm.cli import live
from collm.cli.options import add_allow_ragged, add_dataset_args, add_model_args, add_sampling_args, backend_from_args
from collm.errors import CollmError


def add_parser(sub):
    p = sub.add_parser("eval", help="evaluate a sample bank (curves, bins, oracle, policies)", description=__doc__)
    p.add_argument("--bank", action="append", default=[], metavar="FILE",
                   help="bank file (JSONL); repeat to join parts of one model's bank")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw accuracy against samples and FLOPs")
    p.add_argument("--seeds", type=int, default=20, help="seeded draw orders to average over (default 20)")
    p.add_argument("--model-params", type=int, default=None, metavar="P",
                   help="parameter count for FLOPs (default: the bank's header)")
    p.add_argument("--ks", default="1,2,4,8,16,32", help="uniform sample counts (default 1,2,4,8,16,32)")
    p.add_argument("--bins", type=int, default=5, help="difficulty bins (default 5)")
    p.add_argument("--policy", action="append", default=[], metavar="POLICY.json",
                   help="a fitted allocation policy, or a per-bin strategy policy, to replay on the bank (repeatable)")
    p.add_argument("--execute-code", action="store_true",
                   help="answer each sample with what its own Python prints, where it has code (needs a bank "
                        "built with --keep-text; runs the code here)")
    add_allow_ragged(p)
    live = p.add_argument_group("live (--live): answer real questions with a live model")
    live.add_argument("--live", action="store_true", help="answer the dataset's questions live instead of replaying a bank")
    add_model_args(live)
    add_dataset_args(live, required=False)
    live.add_argument("--budget", type=float, default=None, help="most generations any question may get (default: the policy's own)")
    live.add_argument("--uniform", type=int, default=None, metavar="N", help="uniform best-of-N instead of a policy")
    live.add_argument("--concurrency", type=int, default=8, help="questions answered at once (default 8)")
    live.add_argument("--out", default=None, help="results file (JSONL, one line per question; resumed when it exists)")
    live.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sampling_args(p)  # live only
    return p


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CollmError(f"--ks must be comma-separated integers (got {text!r})") from None
    if not ks or min(ks) < 1:
        raise CollmError("--ks needs sample counts >= 1")
    return ks


def run(args) -> int:
    if args.live:
        return run_live(args)
    if not args.bank:
        raise CollmError("give --bank FILE (a sample bank to replay), or --live with --model and --dataset")
    if args.seeds < 1:
        raise CollmError(f"--seeds must be at least 1 (got {args.seeds})")
    if args.model_params is not None and args.model_params < 1:
        raise CollmError("--model-params must be a positive parameter count")
    if args.execute_code:  # refused before any work where the sandbox is missing
        require_sandbox()
    bank = merge_banks([load_bank(f, allow_ragged=args.allow_ragged) for f in args.bank])
    if args.execute_code:
        bank = bank.with_program_answers()
    ks = [k for k in _ks(args.ks) if k <= bank.k]
    if not ks:
        raise CollmError(f"{bank.path} holds {bank.k} samples per problem; every --ks value is larger")
    seeds = list(range(args.seeds))
    res = evaluate(bank, ks, seeds, args.model_params, args.bins)
    top = res["uniform_curve"][str(ks[-1])]["accuracy"]
    res["oracle_samples_to_match_uniform"] = {"k": ks[-1], "accuracy": top,
                                              "samples": cost_to_reach(res["oracle"], top, "samples")}
    if args.policy:
        from pathlib import Path

        from collm.allocation.evaluate import policy_report
        from collm.policies import policy_kind
        from collm.strategies.replay import strategy_policy_report

        reports = [{"name": Path(path).name,
                    **(strategy_policy_report(bank, path, seeds, params=args.model_params) if policy_kind(path) == "strategy"
                       else policy_report(bank, path, seeds, params=args.model_params))}
                   for path in args.policy]
        res["policy"] = reports[0] if len(reports) == 1 else reports
        res["policies"] = reports
    if args.plot:
        from collm.bank.plot import plot_eval

        plot_eval(res, args.plot, policies=res.get("policies"))
    if args.json:
        print(json.dumps(res, indent=None if not sys.stdout.isatty() else 1))
    else:
        print(table(res))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _f(x: float) -> str:
    return f"{x:.3g}" if x < 1e3 else f"{x:.2e}"


def table(res: dict) -> str:
    m = res["model"]
    params = res["params"]
    lines = [f"bank {res['bank']}: {res['problems']} problems, K={res['k']}, "
             f"model {m.get('name', 'unknown')}, {params / 1e6:.1f}M params, mean of {res['seeds']} seeds"]
    g = res["greedy_point"]
    lines.append(f"greedy accuracy {g['accuracy']:.3f} [{g['lo']:.3f}, {g['hi']:.3f}]  "
                 f"{g['tokens']:.0f} tokens  {_f(g['flops'])} FLOPs per problem")
    lines.append("")
    lines.append("  k   maj@k   95% interval     pass@k   tokens/problem  FLOPs/problem")
    for k, u in res["uniform_curve"].items():
        lines.append(f"{int(k):3d}   {u['accuracy']:.3f}   [{u['lo']:.3f}, {u['hi']:.3f}]   "
                     f"{res['pass_at_k'][k]:.3f}   {u['tokens']:14.0f}  {_f(u['flops']):>13}")
    lines.append("")
    ks = list(res["uniform"])
    lines.append("difficulty bins (Snell et al.: quantiles of per-problem pass@1; 1 = easiest)")
    lines.append("bin    N   pass@1 range    greedy  " + "  ".join(f"maj@{k:<3}" for k in ks))
    for b in res["difficulty_bins"]:
        lines.append(f"{b['bin']:3d} {b['n']:4d}   [{b['pass1_min']:.2f}, {b['pass1_max']:.2f}]    {b['greedy']:.3f}   "
                     + "  ".join(f"{b['uniform'][k]:.3f} " for k in ks))
    lines.append("")
    lines.append("oracle per-problem frontier (best allocation when each problem's curve is known)")
    orc = res["oracle"]
    picks = sorted({min(range(len(orc)), key=lambda j: abs(orc[j]["samples"] - s)) for s in (1, 1.5, 2, 3, 4, 6, 8)}
                   | {len(orc) - 1})
    lines.append("  samples  accuracy   FLOPs/problem")
    for j in picks:
        lines.append(f"  {orc[j]['samples']:7.2f}  {orc[j]['accuracy']:.3f}   {_f(orc[j]['flops']):>13}")
    match = res["oracle_samples_to_match_uniform"]
    if match["samples"] is not None:
        lines.append(f"the oracle matches uniform maj@{match['k']} ({match['accuracy']:.3f}) "
                     f"with {match['samples']:.2f} samples per problem ({match['k'] / match['samples']:.1f}x fewer)")
    for pol in res.get("policies", []):
        lines.append("")
        if pol.get("kind") == "strategy":
            lines += strategy_lines(pol)
            continue
        lines.append("policy " + (pol.get("name") or pol.get("path") or "") + ": "
                     + ", ".join(f"{k} {_fmt(v)}" for k, v in pol.items() if not isinstance(v, (dict, list)) and k != "name"))
    return "\n".join(lines)


def run_live(args) -> int:
    if args.bank:
        raise CollmError("--live answers questions with a model: it takes no --bank")
    if not args.dataset or not args.out:
        raise CollmError("--live needs --dataset (a name or a file) and --out (the results file)")
    if len(args.policy) > 1:
        raise CollmError("--live evaluates one --policy at a time")
    args.policy = args.policy[0] if args.policy else None
    if args.execute_code:
        require_sandbox()
        args.task = (args.task or "gsm8k") + ("" if (args.task or "").endswith("+program") else "+program")
    problems = live.check(args)
    backend = backend_from_args(args)
    try:
        return live.run(args, backend, problems)
    finally:
        backend.close()


def _fmt(v) -> str:
    if isinstance(v, float):
        return _f(v) if abs(v) >= 1e3 else f"{v:.3f}"
    return str(v)


def strategy_lines(pol: dict) -> list[str]:
    """A strategy policy's replay: per budget, the per-bin choice against majority and weighted voting."""
    rho = pol.get("difficulty_spearman")
    out = [f"strategy policy {pol['name']}: bins {pol['bins']}"
           + (f" (Spearman with pass@1 difficulty {rho:.2f})" if rho is not None else ""),
           "  budget  chosen   majority  weighted  FLOPs/problem  estimator share  choices"]
    for r in pol["budgets"]:
        ch = ", ".join(f"{k} {v}" for k, v in r["choices"].items())
        out.append(f"  {r['budget']:6d}  {r['accuracy']:.3f}    {r['majority']:.3f}     {r['weighted']:.3f}   "
                   f"{_f(r['flops']):>13}  {100 * r['estimator_share']:14.1f}%  {ch}")
    out.append(f"  ({pol['note']})")
    return out
