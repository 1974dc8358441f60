"""`collm plan`: a small model with more samples, or a larger model?

    collm plan --small-params 0.5B --large-params 7.6B --pretrain-tokens 5.5T --inference-tokens 1T
    collm plan ... --bank BANK.jsonl [--policy POLICY.json] --target-accuracy 0.38
    collm plan --compute 1e21        # Chinchilla-optimal size for a training budget

Snell et al. 2024's FLOPs-matched comparison (pretraining 6·N·D, inference
2·N·D): how many samples per question the small model may spend before it
costs as much as the large model answering once. Numbers take suffixes
k, M, B, T (494M, 7.6B, 5.5T) or exponents (3e11). See collm/plan.py.
"""

from __future__ import annotations

import json

from collm import plan as planner
from collm.bank import load_bank
from collm.cli.options import add_allow_ragged
from collm.errors import CollmError
from collm.plan import chinchilla_tokens


def add_parser(sub):
    p = sub.add_parser("plan", help="FLOPs-matched small-vs-large model planning (Snell et al.) and Chinchilla sizing",
                       description="How many test-time samples per question a small model may spend to match a "
                                   "larger model's total FLOPs (pretraining 6*N*D + inference 2*N*DI), and, given a "
                                   "bank of the small model's samples, whether it reaches a target accuracy within "
                                   "that. Also Chinchilla-optimal sizing for a training budget (--compute).")
    p.add_argument("--small-params", metavar="P", help="small model's parameters (e.g. 494M, 0.5B)")
    p.add_argument("--large-params", metavar="Q", help="large model's parameters (e.g. 7.6B)")
    p.add_argument("--pretrain-tokens", metavar="D", help="pretraining tokens of both models (e.g. 5.5T)")
    p.add_argument("--large-pretrain-tokens", metavar="D_L", default=None,
                   help="the large model's pretraining tokens when not D (Snell et al. use the same D)")
    p.add_argument("--inference-tokens", metavar="DI",
                   help="tokens the large model will process at inference, over all queries (prompts + answers)")
    p.add_argument("--bank", metavar="FILE", help="a sample bank of the small model: check the budget against it")
    p.add_argument("--policy", action="append", default=[], metavar="POLICY.json",
                   help="a collm policy to check within the budget (with --bank; repeatable)")
    p.add_argument("--target-accuracy", metavar="A", default=None,
                   help="accuracy to reach, e.g. 0.38 or 38%% (with --bank)")
    p.add_argument("--seeds", type=int, default=20, help="replay seeds (with --bank)")
    p.add_argument("--model-params", type=int, default=None,
                   help="the bank model's parameters when its header does not say")
    p.add_argument("--compute", metavar="C", default=None,
                   help="training budget in FLOPs: print the Chinchilla-optimal model size and tokens")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_allow_ragged(p)
    return p


def parse_accuracy(text: str) -> float:
    s = str(text).strip()
    pct = s.endswith("%")
    try:
        v = float(s.rstrip("%"))
    except ValueError:
        raise CollmError(f"--target-accuracy: cannot read {text!r} (examples: 0.38, 38%)") from None
    if pct or v > 1:
        v /= 100
    if not 0 <= v <= 1:
        raise CollmError(f"--target-accuracy must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return v


def _n(x: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:.4g}"


def matched_text(plan) -> list[str]:
    p = plan
    same = p.large_pretrain_tokens == p.pretrain_tokens
    lines = [
        "FLOPs-matched comparison (Snell et al. 2024, sec. 7): pretraining 6*N*D, inference 2*N*DI",
        f"  small model   P = {_n(p.small_params)} params, pretrained on D = {_n(p.pretrain_tokens)} tokens",
        f"  large model   Q = {_n(p.large_params)} params (M = Q/P = {p.ratio_m:.4g}), pretrained on "
        f"{'the same D' if same else 'D_L = ' + _n(p.large_pretrain_tokens) + ' tokens'}",
        f"  inference     DI = {_n(p.inference_tokens)} tokens, the large model answering each question once; "
        f"R = DI/D = {p.ratio_r:.4g}",
        f"  large total   6*Q*D{'' if same else '_L'} + 2*Q*DI = {p.large_pretrain_flops:.4g} + "
        f"{p.large_inference_flops:.4g} = {p.large_total_flops:.4g} FLOPs",
        f"  small         6*P*D = {p.small_pretrain_flops:.4g} FLOPs pretraining; "
        f"{p.small_inference_budget_flops:.4g} FLOPs left for inference",
        f"  => k = {p.samples:.4g} samples per question"
        + (f"   (= M + 3(M-1)/R = {p.ratio_m:.4g} + {3 * (p.ratio_m - 1) / p.ratio_r:.4g})" if same else ""),
        "     each sample costing the tokens of one large-model answer (prompt included);",
        "     "
        + ("R << 1: pretraining dominates, test-time samples are cheap" if p.ratio_r < 0.5 else
           "R >> 1: inference dominates, k tends to M, the per-token price ratio" if p.ratio_r > 2 else
           "R ~ 1: pretraining and inference weigh about the same"),
    ]
    ck = [("small", p.small_params, p.pretrain_tokens), ("large", p.large_params, p.large_pretrain_tokens)]

    lines += [f"  Chinchilla check (20 tokens/param): the {name} model's pretraining tokens are "
              f"{d / chinchilla_tokens(n):.3g}x its compute-optimal {_n(chinchilla_tokens(n))}" for name, n, d in ck]
    return lines


def bank_text(chk: dict) -> list[str]:
    lines = [f"Bank check: {chk['bank']} ({chk['problems']} problems x {chk['k']} samples, {_n(chk['params'])} params)",
             "  large model taken to spend the small model's greedy tokens per question: "
             f"{chk['tokens_per_question']:.0f} -> budget {chk['budget_flops_per_question']:.4g} FLOPs per question",
             f"  with the prompt ({chk['mean_prompt_tokens']:.0f} tokens) prefilled once, that is "
             f"{chk['completions_with_prefix_sharing']:.4g} completions of {chk['mean_completion_tokens']:.0f} tokens"]
    if chk.get("warning"):
        lines.append(f"  warning: {chk['warning']}")
    tgt = chk["target_accuracy"]
    for c in chk["candidates"]:
        verdict = "within budget" if c["within_budget"] else "OVER budget"
        if tgt is not None:
            verdict += ", reaches target" if c["reaches_target"] else ", misses target"
        lines.append(f"  {c['method']:<44} accuracy {100 * c['accuracy']:5.1f}%  samples {c['samples']:6.2f}  "
                     f"FLOPs/question {c['flops']:.3g}  {verdict}")
    if tgt is not None:
        need = chk.get("uniform_flops_to_target")
        how = ("never, within the bank's samples" if need is None else
               f"{chk['uniform_samples_to_target']:.3g} samples, {need:.3g} FLOPs per question")
        lines.append(f"  uniform majority vote reaches {100 * tgt:.1f}%: {how}")
        lines.append(f"  => target {100 * tgt:.1f}% {'REACHED' if chk['reaches_target'] else 'NOT reached'} "
                     "within the FLOPs-matched budget")
    if chk.get("note"):
        lines.append(f"  note: {chk['note']}")
    return lines


def chinchilla_text(c) -> list[str]:
    return [f"Chinchilla-optimal for C = {c.compute:.4g} training FLOPs (Hoffmann et al. 2022):",
            f"  N_opt = sqrt(C / (6 * {c.tokens_per_param:g})) = {_n(c.params)} params, "
            f"D_opt = {c.tokens_per_param:g} * N_opt = {_n(c.tokens)} tokens",
            "  assumes C = 6*N*D, a dense transformer, one pass over fresh data and ~20 tokens per parameter",
            "  (N_opt grows as C^0.5); counts training only: a model that will serve many tokens is better",
            "  made smaller and trained longer"]


def run(args) -> int:
    matched_args = [args.small_params, args.large_params, args.pretrain_tokens, args.inference_tokens]
    if not any(a is not None for a in matched_args) and args.compute is None:
        raise CollmError("give --small-params, --large-params, --pretrain-tokens and --inference-tokens "
                         "(FLOPs-matched comparison), or --compute (Chinchilla sizing)")
    if args.seeds < 1:
        raise CollmError("--seeds must be at least 1")
    if (args.policy or args.target_accuracy is not None) and not args.bank:
        raise CollmError("--policy and --target-accuracy need --bank (a bank of the small model's samples)")
    out, text = {}, []
    if any(a is not None for a in matched_args):
        names = ["--small-params", "--large-params", "--pretrain-tokens", "--inference-tokens"]
        missing = [n for n, a in zip(names, matched_args) if a is None]
        if missing:
            raise CollmError(f"the FLOPs-matched comparison also needs {', '.join(missing)}")
        P, Q, D, DI = (planner.parse_quantity(a, n) for a, n in zip(matched_args, names))
        DL = None if args.large_pretrain_tokens is None else planner.parse_quantity(args.large_pretrain_tokens,
                                                                                    "--large-pretrain-tokens")
        plan = planner.flops_matched_samples(P, Q, D, DI, DL)
        out["matched"] = plan.to_dict()
        text += matched_text(plan)
        if args.bank:
            target = None if args.target_accuracy is None else parse_accuracy(args.target_accuracy)
            bank = load_bank(args.bank, allow_ragged=args.allow_ragged)
            chk = planner.bank_check(bank, plan, args.policy, target, args.seeds, args.model_params)
            out["bank_check"] = chk
            text += [""] + bank_text(chk)
    elif args.bank:
        raise CollmError("--bank needs the FLOPs-matched comparison's arguments")
    if args.compute is not None:
        c = planner.chinchilla_optimal(planner.parse_quantity(args.compute, "--compute"))
        out["chinchilla"] = c.to_dict()
        text += ([""] if text else []) + chinchilla_text(c)
    print(json.dumps(out, indent=1) if args.json else "\n".join(text))
    return 0
