"""`collm calibrate`: fit an allocation policy on a sample bank for a budget.

    collm calibrate --bank BANK.jsonl --policy marginal --budget 8 --out policy.json
    collm calibrate --bank BANK.jsonl --policy schedule --flops 1.5e12 --out policy.json

--budget is average generations per problem (the greedy pass counts as one),
--flops average FLOPs per problem. The figures printed (and stored in the
file's "cv") come from two-fold cross-validation: fitted on half the
problems, replayed on the other half, and swapped; never in-sample. The
policy written is then fitted on the whole bank.
"""

from __future__ import annotations

import json
import sys


def add_parser(sub):
    p = sub.add_parser("calibrate", help="fit an allocation policy on a sample bank for a budget",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--bank", required=True, help="sample bank (JSONL)")
    p.add_argument("--policy", required=True, help="uniform, schedule, early-stop or marginal")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--budget", type=float, help="average generations per problem")
    g.add_argument("--flops", type=float, help="average FLOPs per problem")
    p.add_argument("--out", required=True, help="policy JSON to write")
    p.add_argument("--seeds", type=int, default=4, help="draw-order seeds for the cross-validated figures")
    p.add_argument("--splits", type=int, default=1, help="random two-fold splits to average over")
    p.add_argument("--model-params", type=int, default=None, help="model size, for banks that do not say it")
    p.add_argument("--execute-code", action="store_true",
                   help="answer each sample with what its own Python prints, where it has code (needs a bank "
                        "built with --keep-text; runs the code here); `collm ask` then needs --execute-code too")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args) -> int:
    from tqdm import tqdm

    from collm.allocation import BankView, get_policy
    from collm.allocation.budget import minimum_flops
    from collm.allocation.evaluate import compute_ratio, cross_validate, uniform_points
    from collm.bank import load_bank
    from collm.bank.format import file_sha256
    from collm.errors import CollmError

    if args.execute_code:  # refused before any work where the sandbox is missing
        from collm.answers.program import require_sandbox

        require_sandbox()
    bank = load_bank(args.bank)
    if args.execute_code:
        bank = bank.with_program_answers()
    view = BankView(bank, args.model_params)
    get_policy(args.policy)  # unknown names fail before any work
    if args.budget is not None:
        view.budget(samples=args.budget)  # refuses <= 0 and < 1, stating the minimum
        if args.budget > view.K + 1:
            raise CollmError(f"a budget of {args.budget:g} generations per problem is more than the bank holds ({view.K + 1})")
    else:
        view.budget(flops=args.flops)
        least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens) / len(view)
        if args.flops < least:
            raise CollmError(f"--flops {args.flops:.4g} is below the minimum {least:.4g}")
    if args.seeds < 1 or args.splits < 1:
        raise CollmError("--seeds and --splits must be at least 1")
    bar = tqdm(total=2 * args.splits + 1, desc=f"calibrating {args.policy}", file=sys.stderr, leave=False)
    cv = cross_validate(view, args.policy, samples=args.budget, flops=args.flops, seeds=range(args.seeds),
                        splits=range(args.splits), progress=lambda: bar.update())
    pts = uniform_points(view, range(max(20, args.seeds)))
    r = compute_ratio(pts, cv["accuracy"], cv["flops"])
    cv.update({"ratio_to_uniform": r["ratio"], "ratio_bound": r["bound"], "bank": bank.path,
               "bank_sha256": file_sha256(bank.path), "problems": len(view)})
    pol = get_policy(args.policy).fit(view, samples=args.budget, flops=args.flops)
    bar.update()
    bar.close()
    pol.cv = cv
    pol.save(args.out)
    if args.json:
        print(json.dumps({"policy": pol.to_dict()["params"], "kind": pol.kind, "cv": cv, "out": args.out}, indent=1))
        return 0
    print(f"policy {pol.kind} calibrated on {len(view)} problems of {bank.path} -> {args.out}")
    print(f"two-fold cross-validated ({cv['folds']} folds x {cv['seeds']} seeds), on problems it was not fitted on:")
    print(f"  accuracy {cv['accuracy']:.3f}  generations/problem {cv['samples']:.2f}  "
          f"FLOPs/problem {cv['flops']:.3g} (estimators {cv['estimator_flops']:.3g})")
    print(f"  uniform majority needs {r['ratio']:.2f}x {'or more ' if r['bound'] == '>=' else ''}the FLOPs for this accuracy")
    return 0
