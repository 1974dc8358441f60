"""`collm calibrate`: fit a policy on a sample bank.

    collm calibrate --bank BANK.jsonl --policy marginal --budget 8 --out policy.json
    collm calibrate --bank BANK.jsonl --policy schedule --flops 1.5e12 --out policy.json
    collm calibrate --bank BANK.jsonl --strategies --out model.strategies.json
    collm calibrate --bank BANK.jsonl --policy auto --budget 4 --out policy.json

--budget is average generations per problem (the greedy pass counts as one),
--flops average FLOPs per problem. The figures printed (and stored in the
file's "cv") come from two-fold cross-validation: fitted on half the
problems, replayed on the other half, and swapped; never in-sample. The
policy written is then fitted on the whole bank.

--policy auto cross-validates every kind the bank supports (schedule needs
the prompt-side signals, which a bank from an upstream without prompt
log-probs lacks) at the budget, prints the comparison and writes the one
with the best held-out accuracy (the fewest FLOPs among equals).

The policy file records the bank's model (name, sha256 or an upstream's
model id, parameter count): `collm serve` and `collm ask` refuse it for
another model.

--strategies fits the per-bin strategy policy instead (collm.strategies.select:
the strategy per predicted difficulty bin and budget, chosen by two-fold
cross-validation), what `collm ask --strategy auto` runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from collm.allocation import BankView, get_policy
from collm.allocation.evaluate import compute_ratio, cross_validate, uniform_points
from collm.answers.program import require_sandbox
from collm.bank import load_bank
from collm.bank.format import file_sha256, has_prompt_signals
from collm.budget import minimum_flops
from collm.cli.eval import _ks
from collm.cli.options import add_allow_ragged
from collm.errors import CollmError
from collm.strategies.replay import fit_bank_strategy_policy


def add_parser(sub):
    p = sub.add_parser("calibrate", help="fit a policy on a sample bank for a budget",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--bank", required=True, help="sample bank (JSONL)")
    p.add_argument("--policy", default=None,
                   help="uniform, schedule, early-stop, marginal, or auto (each the bank supports, cross-validated: "
                        "the best is written)")
    p.add_argument("--strategies", action="store_true",
                   help="fit the per-bin strategy policy (strategy per predicted difficulty bin and budget)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", type=float, help="average generations per problem")
    g.add_argument("--flops", type=float, help="average FLOPs per problem")
    p.add_argument("--out", required=True, help="policy JSON to write")
    p.add_argument("--paces", default=None, metavar="B1,B2,...",
                   help="also calibrate the chosen kind's knobs for these budgets (generations per problem), "
                        "each cross-validated, and record them in the file: a live budget then runs at the pace "
                        "calibrated for it (Policy.paced)")
    p.add_argument("--seeds", type=int, default=None,
                   help="draw-order seeds for the cross-validated figures (default 4; --strategies: 20)")
    p.add_argument("--splits", type=int, default=1, help="random two-fold splits to average over")
    p.add_argument("--ks", default="1,2,4,8,16,32", help="--strategies: the budgets to choose for (default 1,2,4,8,16,32)")
    p.add_argument("--model-params", type=int, default=None, help="model size, for banks that do not say it")
    p.add_argument("--execute-code", action="store_true",
                   help="answer each sample with what its own Python prints, where it has code (needs a bank "
                        "built with --keep-text; runs the code here); `collm ask` then needs --execute-code too")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_allow_ragged(p)
    return p


def run(args) -> int:
    if args.strategies and (args.policy or args.budget is not None or args.flops is not None):
        raise CollmError("--strategies fits the per-bin strategy policy: it takes no --policy, --budget or --flops")
    if not args.strategies and (args.policy is None or (args.budget is None and args.flops is None)):
        raise CollmError("give --policy KIND and --budget (or --flops), or --strategies")
    seeds = args.seeds if args.seeds is not None else (20 if args.strategies else 4)
    if seeds < 1 or args.splits < 1:
        raise CollmError("--seeds and --splits must be at least 1")
    if args.execute_code:  # refused before any work where the sandbox is missing
        require_sandbox()
    bank = load_bank(args.bank, allow_ragged=args.allow_ragged)
    _refuse_evaluation_rows(bank)
    if args.strategies and not has_prompt_signals(bank.header):
        raise CollmError(f"{args.bank}: the strategy policy predicts difficulty bins from prefix entropy and prompt "
                         "NLL, and the bank holds no prompt-side signals (its model's server gives no prompt "
                         "log-probs); calibrate an allocation policy instead: --policy early-stop, marginal or auto")
    if args.execute_code:
        bank = bank.with_program_answers()
    if args.strategies:
        return _strategies(args, bank, seeds)
    return _allocation(args, bank, seeds)


EVALUATION_ROWS = {("gsm8k", "test"): 640}  # (dataset, split) -> first row kept for evaluation only


def _refuse_evaluation_rows(bank) -> None:
    """collm's data rule: GSM8K test rows >= 640 hold its held-out claims, so nothing is fitted on them."""
    first = EVALUATION_ROWS.get((bank.header.get("dataset"), bank.header.get("split")))
    rows = [p.i for p in bank.problems if first is not None and p.i >= first]
    if rows:
        raise CollmError(f"{bank.path}: {len(rows)} problems are GSM8K test rows >= {first} (from row {min(rows)}), "
                         "which collm keeps for evaluation only; calibrate on a train-split bank "
                         "(collm bank build --dataset gsm8k --split train) or on test rows below 640")


def _allocation(args, bank, seeds: int) -> int:
    view = BankView(bank, args.model_params)
    kinds = _kinds(view) if args.policy == "auto" else [args.policy]
    for kind in kinds:
        get_policy(kind)  # unknown names fail before any work
    if args.budget is not None:
        view.budget(samples=args.budget)  # refuses <= 0 and < 1, stating the minimum
        if args.budget > view.K + 1:
            raise CollmError(f"a budget of {args.budget:g} generations per problem is more than the bank holds ({view.K + 1})")
    else:
        view.budget(flops=args.flops)
        least = minimum_flops(view.A["prompt_tokens"], view.params, view.max_tokens) / len(view)
        if args.flops < least:
            raise CollmError(f"--flops {args.flops:.4g} is below the minimum {least:.4g}")
    cvs = {kind: _cross_validated(args, view, bank, kind, seeds) for kind in kinds}
    best = min(kinds, key=lambda k: (-round(cvs[k]["accuracy"], 6), cvs[k]["flops"]))
    pol = get_policy(best).fit(view, samples=args.budget, flops=args.flops)
    pol.cv = cvs[best]
    if args.paces:
        pol.state["paces"] = _paces(args, view, bank, pol, seeds)
    pol.save(args.out)
    cv = cvs[best]
    if args.json:
        print(json.dumps({"policy": pol.get_params(), "state": _small(pol.state), "kind": pol.kind, "cv": cv,
                          "out": args.out, **({"compared": cvs} if len(kinds) > 1 else {})}, indent=1))
        return 0
    if len(kinds) > 1:
        print(_comparison(cvs, best, view))
    print(f"policy {pol.kind} calibrated on {len(view)} problems of {bank.path} -> {args.out}")
    print(f"two-fold cross-validated ({cv['folds']} folds x {cv['seeds']} seeds), on problems it was not fitted on:")
    print(f"  accuracy {cv['accuracy']:.3f}  generations/problem {cv['samples']:.2f}  "
          f"FLOPs/problem {cv['flops']:.3g} (estimators {cv['estimator_flops']:.3g})")
    print(f"  uniform majority needs {cv['ratio_to_uniform']:.2f}x {'or more ' if cv['ratio_bound'] == '>=' else ''}"
          "the FLOPs for this accuracy")
    return 0


def _paces(args, view, bank, pol, seeds: int) -> list[dict]:
    """The chosen kind's learned knobs at each --paces budget (and at the main one), cross-validated."""
    try:
        budgets = sorted({float(x) for x in args.paces.split(",") if x.strip()})
    except ValueError:
        raise CollmError(f"--paces takes budgets like 2,4,8 (got {args.paces!r})") from None
    for b in budgets:
        if b < 1 or b > view.K + 1:
            raise CollmError(f"--paces: a budget of {b:g} generations per problem is outside 1..{view.K + 1}")

    def pace(p, cv, target):
        return {"target_samples": target, "samples": round(cv["samples"], 4), "flops": round(cv["flops"]),
                "accuracy": round(cv["accuracy"], 4), "learned": {k: p.state[k] for k in p.learned if k in p.state}}

    out = [pace(pol, pol.cv, args.budget)]
    for b in budgets:
        if args.budget is not None and b == args.budget:
            continue
        other = get_policy(pol.kind).fit(view, samples=b)
        rest = {k: v for k, v in other.state.items() if k not in other.learned}
        if rest != {k: v for k, v in pol.state.items() if k not in pol.learned and k != "paces"}:
            raise CollmError(f"policy {pol.kind!r} learns more than its knobs at each budget: it cannot record paces")
        args_b = argparse.Namespace(**{**vars(args), "budget": b, "flops": None})
        out.append(pace(other, _cross_validated(args_b, view, bank, pol.kind, seeds), b))
    return sorted(out, key=lambda p: p["flops"])


def _kinds(view) -> list[str]:
    """The policy kinds this bank can calibrate (all, less those that read prompt-side signals it lacks)."""
    return [k for k in ("uniform", "schedule", "early-stop", "marginal")
            if view.prompt_signals or not get_policy(k).needs_prompt_signals]


def _cross_validated(args, view, bank, kind: str, seeds: int) -> dict:
    """Two-fold cross-validated figures of one kind at the budget, and its FLOPs ratio to uniform."""
    from tqdm import tqdm

    bar = tqdm(total=2 * args.splits, desc=f"calibrating {kind}", file=sys.stderr, leave=False)
    try:
        cv = cross_validate(view, kind, samples=args.budget, flops=args.flops, seeds=range(seeds),
                            splits=range(args.splits), progress=lambda: bar.update())
    finally:
        bar.close()
    pts = uniform_points(view, range(max(20, seeds)))
    r = compute_ratio(pts, cv["accuracy"], cv["flops"])
    cv.update({"ratio_to_uniform": r["ratio"], "ratio_bound": r["bound"], "bank": bank.path,
               "bank_sha256": file_sha256(bank.path), "problems": len(view)})
    return cv


def _comparison(cvs: dict, best: str, view) -> str:
    skipped = [k for k in ("uniform", "schedule", "early-stop", "marginal") if k not in cvs]
    lines = ["two-fold cross-validated, each kind at the same budget:",
             "  policy      accuracy  generations  FLOPs/problem  uniform needs"]
    for kind, cv in cvs.items():
        ratio = f"{cv['ratio_to_uniform']:.2f}x" + ("+" if cv["ratio_bound"] == ">=" else "")
        lines.append(f"  {kind:<10}  {cv['accuracy']:.3f}     {cv['samples']:11.2f}  {cv['flops']:13.3g}  "
                     f"{ratio:>13}" + ("   <- best" if kind == best else ""))
    if skipped:
        lines.append(f"  (not tried: {', '.join(skipped)}: "
                     + ("the bank holds no prompt-side signals)" if not view.prompt_signals else "not applicable)"))
    return "\n".join(lines)


def _small(state: dict) -> dict:
    """The learned scalars of a policy's state (not its weight matrices)."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _strategies(args, bank, seeds: int) -> int:
    pol = fit_bank_strategy_policy(bank, _ks(args.ks), range(seeds), params=args.model_params)
    pol.meta["bank_sha256"] = file_sha256(bank.path)
    pol.save(args.out)
    overall = {k: pol.held_out_accuracy(k) for k in pol.budgets}
    if args.json:
        print(json.dumps({"out": args.out, "budgets": pol.budgets, "held_out_accuracy": overall,
                          "choices": {str(b): {str(k): pol.table[b][k]["strategy"] for k in pol.budgets}
                                      for b in pol.bins}}, indent=1))
        return 0
    print(f"strategy policy fitted on {len(bank)} problems of {bank.path} -> {args.out}")
    print("two-fold cross-validated accuracy of the per-bin choice (held out), and the choice per bin:")
    print("  budget  held-out  " + "  ".join(f"bin {b}" for b in pol.bins))
    for k in pol.budgets:
        row = "  ".join(f"{pol.table[b][k]['strategy']:<5}" for b in pol.bins)
        acc = overall[k]
        print(f"  {k:6d}  {acc:.3f}     {row}" if acc is not None else f"  {k:6d}  n/a       {row}")
    return 0
