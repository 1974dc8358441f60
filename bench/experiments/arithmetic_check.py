"""Does the arithmetic check (collm.verifiers.arithmetic) pay, and does the
shipped allocation policy hold on GSM8K problems it never saw? An experiment
on a bank that keeps its samples' texts, GSM8K rows 640+ (the shared bank
holds rows 0-639), built on a CPU in two halves of 16 samples and joined:

    collm bank build --model qwen2.5-coder-0.5b --engine llamacpp --dataset gsm8k --offset 640 --limit 68 \
        --k 16 --max-tokens 400 --keep-text --seed 0 --out bench/results/gsm8k_heldout_qwen05b_k16.jsonl
    (the same with --seed 1 --out bench/results/gsm8k_heldout_qwen05b_k16_seed1.jsonl)
    collm bank join bench/results/gsm8k_heldout_qwen05b_k16.jsonl bench/results/gsm8k_heldout_qwen05b_k16_seed1.jsonl \
        --out bench/results/gsm8k_heldout_qwen05b_k32.jsonl
    python bench/experiments/arithmetic_check.py --bank bench/results/gsm8k_heldout_qwen05b_k32.jsonl

(builds resume where they stopped; the report uses whatever problems the
file holds, any K). It writes bench/results/arithmetic_check.md:

1. per sample: how often a sample with an arithmetic slip is right, against
   one whose equations all hold, and one with nothing the check can read;
2. answer selection at greedy + n - 1 samples: majority vote, the learned
   group scorer without texts, and with the check's two features
   (two-fold CV, splits x draw orders);
3. the marginal policy, fitted on one half with and without texts, against
   uniform majority-of-n on the other half (two-fold CV), and the compute
   each needs to match uniform maj@16 and maj@K;
4. the shipped default policy (fitted on GSM8K rows 0-639 of the shared bank)
   replayed on these rows 640+: the held-out check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from allocation import learned_uniform, reach  # noqa: E402

from collm.allocation import BankView  # noqa: E402
from collm.allocation.evaluate import cross_validate, policy_report, uniform_points  # noqa: E402
from intervals import ratio_interval, uniform_per_problem  # noqa: E402
from collm.policies import default_policy_path  # noqa: E402
from collm.bank import load_bank  # noqa: E402
from collm.bank.format import Bank  # noqa: E402
from collm.answers import get_task  # noqa: E402
from collm.answers.program import program_answer, python_blocks  # noqa: E402
from collm.verifiers.arithmetic import check_arithmetic  # noqa: E402

BUDGETS = (2, 3, 4, 6, 8, 10, 12, 16, 24)
SHARED = "/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
HELDOUT_ROWS = 1319 - 640  # GSM8K test rows the shared bank keeps aside: what a full held-out bank would hold


def without_texts(bank: Bank) -> Bank:
    strip = lambda s: dataclasses.replace(s, t=None)  # noqa: E731
    return Bank(bank.path, [dataclasses.replace(p, greedy=strip(p.greedy), samples=[strip(s) for s in p.samples])
                            for p in bank.problems], bank.header)


def with_program_answers(bank: Bank) -> Bank:
    """The same bank with each finished sample's answer replaced by what its
    Python code prints, where it has code that runs and prints a number."""
    return bank.reextract(get_task("gsm8k+program"))


def code_table(bank: Bank, prog: Bank) -> list[str]:
    rows: dict = {}
    n = 0
    for p, q in zip(bank.problems, prog.problems):
        for s, t in zip(p.samples, q.samples):
            if s.t is None or s.f == "length":
                continue
            n += 1
            if not python_blocks(s.t):
                continue
            ran = program_answer(s.t) is not None
            same = ran and s.a is not None and get_task("gsm8k").grade(s.a, t.a)
            key = ("no number printed (fails, or prints none)" if not ran else
                   "prints the text's answer" if same else "prints another number")
            r = rows.setdefault(key, [0, 0, 0])
            r[0] += 1
            r[1] += bool(s.ok)
            r[2] += bool(t.ok)
    c = sum(r[0] for r in rows.values())
    out = [f"{c} of {n} finished samples ({c / max(n, 1):.1%}) hold a Python block.", "",
           "| Python in the sample | samples | text's answer right | printed answer right |", "|---|---:|---:|---:|"]
    for k, (m, a, b) in sorted(rows.items()):
        out.append(f"| {k} | {m} | {a / m:.1%} | {b / m:.1%} |")
    return out


def sample_table(bank: Bank) -> list[str]:
    rows = {"a slip found": [0, 0], "all checked equations hold": [0, 0], "nothing the check can read": [0, 0]}
    checked = []
    for p in bank.problems:
        for s in p.samples:
            if s.t is None or s.f == "length":
                continue
            r = check_arithmetic(s.t)
            key = ("a slip found" if r.wrong else "all checked equations hold" if r.checked
                   else "nothing the check can read")
            rows[key][0] += 1
            rows[key][1] += bool(s.ok)
            checked.append(r.checked)
    n = sum(v[0] for v in rows.values())
    out = ["| finished samples whose text has | samples | share | right |", "|---|---:|---:|---:|"]
    for k, (c, ok) in rows.items():
        out.append(f"| {k} | {c} | {c / max(n, 1):.1%} | {ok / max(c, 1):.1%} |")
    out.append(f"\nEquations checked per finished sample: mean {np.mean(checked):.1f}, median {np.median(checked):.0f}.")
    return out


def build_commands(bank: Bank, path: str) -> str:
    """The commands that made the bank, from its header."""
    head, name = bank.header, Path(path).name
    sp = head["sampling"]
    rows = f"--offset {bank.problems[0].i} --limit {bank.problems[-1].i - bank.problems[0].i + 1}"
    seeds = sp["seed"] if isinstance(sp["seed"], list) else [sp["seed"]]
    k_each = sp["k"] // len(seeds)
    build = (f"`collm bank build --model qwen2.5-coder-0.5b --engine llamacpp --dataset gsm8k {rows} --k {k_each} "
             f"--max-tokens {sp['max_tokens']} --keep-text --seed {{seed}} --out {{out}}`")
    if "joined_from" not in head:
        return build.format(seed=seeds[0], out=f"bench/results/{name}") + \
            f", then `python bench/experiments/arithmetic_check.py --bank bench/results/{name}`."
    parts = [build.format(seed=s, out=f"bench/results/{f}") for s, f in zip(seeds, head["joined_from"])]
    return ("; ".join(parts) + "; `collm bank join " + " ".join(f"bench/results/{f}" for f in head["joined_from"])
            + f" --out bench/results/{name}`; then `python bench/experiments/arithmetic_check.py --bank "
            f"bench/results/{name}`.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default=str(ROOT / "bench/results/gsm8k_heldout_qwen05b_k32.jsonl"))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench/results/arithmetic_check"))
    args = ap.parse_args()
    t0 = time.time()
    bank = load_bank(args.bank)
    plain = without_texts(bank)
    prog = with_program_answers(bank)
    view, view_plain, view_prog = BankView(bank), BankView(plain), BankView(prog)
    seeds, splits = list(range(args.seeds)), range(args.splits)
    K = view.K
    ns = [n for n in (1, 2, 4, 8, 16, 32) if n <= K]
    res: dict = {"problems": len(bank), "k": K}

    res["uniform"] = uniform_points(view, range(20))
    res["uniform_prog"] = uniform_points(view_prog, range(20))
    res["scorer_text"] = learned_uniform(view, seeds, splits, ns)
    res["scorer_plain"] = learned_uniform(view_plain, seeds, splits, ns)
    res["scorer_prog"] = learned_uniform(view_prog, seeds, splits, ns)
    for name, v in (("marginal_text", view), ("marginal_plain", view_plain), ("marginal_prog", view_prog)):
        res[name] = [{**cross_validate(v, "marginal", samples=b, seeds=seeds, splits=splits, per_problem=True),
                      "budget": b} for b in BUDGETS if b < K]
    refs = sorted({min(16, K), K})
    uc, uf = uniform_per_problem(view, refs)
    ucp, ufp = uniform_per_problem(view_prog, refs)
    res["intervals"] = {f"{name}:{ans}:{n}": ratio_interval(res[name], c, f, j)
                        for name in ("marginal_plain", "marginal_text", "marginal_prog")
                        for ans, c, f in (("text", uc, uf), ("program", ucp, ufp)) for j, n in enumerate(refs)}
    if len(bank) < HELDOUT_ROWS:  # how sure a bank of all the held-out rows would make us, were they like these
        res["projection"] = {f"marginal_prog:{ans}:{K}": ratio_interval(res["marginal_prog"], c, f, len(refs) - 1,
                                                                       size=HELDOUT_ROWS)
                             for ans, c, f in (("text", uc, uf), ("program", ucp, ufp))}
    shipped = default_policy_path(bank.model)
    rep = policy_report(plain, shipped, seeds=range(8))
    res["shipped"] = {k: rep[k] for k in ("accuracy", "samples", "flops", "ratio_to_uniform", "ratio_bound")}
    res["shipped"]["path"] = str(Path(shipped).relative_to(ROOT)) if str(shipped).startswith(str(ROOT)) else str(shipped)
    Path(args.out + ".json").write_text(json.dumps(res, indent=1))

    uni = {p["samples"]: p for p in res["uniform"]}
    tok = 2.0 * view.params
    head = bank.header
    lines = ["# The arithmetic check, and the shipped policy on held-out GSM8K problems", "",
             f"Bank: `{Path(args.bank).name}`: GSM8K test rows {bank.problems[0].i}-{bank.problems[-1].i} "
             f"({len(bank)} problems; the shared bank holds rows 0-639), {K} samples + greedy each, "
             f"{head.get('model', {}).get('name')} GGUF Q4_K_M on llama.cpp (the shared bank was sampled from the same "
             f"file under transformers, bf16), T = {head['sampling']['temperature']}, max {view.max_tokens} tokens, "
             "texts kept.", "",
             "Commands: " + build_commands(bank, args.bank) + "  ",
             f"Machine: 2-core CPU, no GPU; about 75 s per problem per 16 samples to sample, {time.time() - t0:.0f} s "
             f"for this report ({args.splits} splits x {args.seeds} draw orders). Date: {time.strftime('%Y-%m-%d')}.", "",
             "## 1. What a slip says about a sample", ""] + sample_table(bank)
    lines += ["", "## 1b. Running the sample's own Python", ""] + code_table(bank, prog)
    lines += ["", "## 2. Choosing the answer (uniform allocation: greedy pass + n - 1 samples)", "",
              "Two-fold CV (scorers fitted on one half of the problems, scored on the other), "
              f"{args.splits} splits x {args.seeds} draw orders.", "",
              "| generations | uniform majority | learned scorer | + arithmetic check | majority, program answers | "
              "scorer + check, program answers |", "|---:|---:|---:|---:|---:|---:|"]
    unip = {p["samples"]: p for p in res["uniform_prog"]}
    for a, b, c in zip(res["scorer_plain"], res["scorer_text"], res["scorer_prog"]):
        n = a["samples"]
        lines.append(f"| {n} | {uni[n]['accuracy']:.3f} | {a['accuracy']:.3f} | {b['accuracy']:.3f} | "
                     f"{unip[n]['accuracy']:.3f} | {c['accuracy']:.3f} |")
    lines += ["", "(Uniform majority is the bank's majority-of-n over samples, no greedy pass, 20 draw orders.)", "",
              "## 3. The marginal policy, fitted on one half, with and without the check", "",
              "| budget | accuracy | FLOPs/problem | accuracy, + check | FLOPs/problem, + check | "
              "accuracy, + check + program answers | FLOPs/problem |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for a, b, c in zip(res["marginal_plain"], res["marginal_text"], res["marginal_prog"]):
        lines.append(f"| {a['budget']} | {a['accuracy']:.3f} | {a['flops']:.3g} | {b['accuracy']:.3f} | {b['flops']:.3g} | "
                     f"{c['accuracy']:.3f} | {c['flops']:.3g} |")
    lines += ["", "Compute to match uniform majority: ratio = uniform's FLOPs / the policy's FLOPs at that accuracy "
              "(linear between budget points; '>=' where the policy's cheapest point is already above it). "
              "'Text answers': the baseline votes over the answers the samples state; 'program answers': over what "
              "their Python prints where it prints a number (a stronger baseline).", ""]
    for n in refs:
        top, topp = uni[n], unip[n]
        lines += [f"Uniform maj@{n}: {top['accuracy']:.3f} with text answers, {topp['accuracy']:.3f} with program "
                  f"answers, at {top['flops']:.3g} FLOPs/problem.", "",
                  f"| policy | FLOPs at maj@{n} acc. | ratio | FLOPs at program maj@{n} acc. | ratio |",
                  "|---|---:|---:|---:|---:|"]
        for label, pts in (("uniform allocation + learned scorer", res["scorer_plain"]),
                           ("uniform allocation + scorer with the check", res["scorer_text"]),
                           ("uniform allocation + scorer with the check, program answers", res["scorer_prog"]),
                           ("marginal, learned scorer", res["marginal_plain"]),
                           ("marginal, scorer with the check", res["marginal_text"]),
                           ("marginal, scorer with the check, program answers", res["marginal_prog"])):
            row = f"| {label} |"
            for ref in (top, topp):
                f = reach(pts, ref["accuracy"])
                low = min(p["flops"] for p in pts)
                bound = ">=" if f is not None and f <= low and min(pts, key=lambda p: p["flops"])["accuracy"] > ref["accuracy"] else ""
                row += " not reached | - |" if f is None else f" {f:.3g} | {bound}{ref['flops'] / f:.2f}x |"
            lines.append(row)
        lines.append("")
    lines += ["How sure: a paired bootstrap over problems (2,000 resamples of the held-out figures; uniform and "
              "policy on the same resampled problems), 90% interval of the ratio; a resample where the policy never "
              "reaches uniform's accuracy counts as 0; after the interval, the share of resamples where it gets "
              "there at all, and the share where the ratio is 4x or more (collm's target).", "",
              "| policy | " + " | ".join(f"vs maj@{n}, text | vs maj@{n}, program" for n in refs) + " |",
              "|---|" + "---:|" * (2 * len(refs))]
    for name, label in (("marginal_plain", "marginal, learned scorer"), ("marginal_text", "marginal, + check"),
                        ("marginal_prog", "marginal, + check + program answers")):
        cells = []
        for n in refs:
            for ans in ("text", "program"):
                r = res["intervals"][f"{name}:{ans}:{n}"]
                cells.append(f"{r['ratio']:.2f}x [{r['lo']:.2f}, {r['hi']:.2f}], {r['reached']:.0%}, "
                             f">= {r['target']:g}x {r['at_target']:.0%}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if "projection" in res:
        t, pr = (res["projection"][f"marginal_prog:{a}:{K}"] for a in ("text", "program"))
        lines += [f"A projection, not a measurement: resampling {HELDOUT_ROWS} problems (all the GSM8K test rows the "
                  f"shared bank keeps aside) from these {len(bank)}, the ratios of 'marginal, + check + program answers' "
                  f"against maj@{K} would have the 90% intervals [{t['lo']:.2f}, {t['hi']:.2f}] (text answers) and [{pr['lo']:.2f}, {pr['hi']:.2f}] "
                  f"(program answers), at {t['target']:g}x or more in {t['at_target']:.0%} and {pr['at_target']:.0%} of resamples, "
                  "if the rows not yet sampled were like these.", ""]
    top = uni[K]
    A = view.A
    lines += [f"This bank: greedy accuracy {A['greedy_ok'].mean():.3f}, mean pass@1 {A['ok'].mean():.3f}, "
              f"pass@{K} {A['ok'].any(1).mean():.3f}, uniform maj@{K} {top['accuracy']:.3f}."]
    if Path(SHARED).is_file():
        sv = BankView(load_bank(SHARED))
        su = {p["samples"]: p for p in uniform_points(sv, range(20))}
        lines[-1] += (f" The shared bank (rows 0-639, the same weights under transformers): greedy "
                      f"{sv.A['greedy_ok'].mean():.3f}, mean pass@1 {sv.A['ok'].mean():.3f}, uniform maj@{K} "
                      f"{su[K]['accuracy']:.3f}.")
    sh = res["shipped"]
    lines += ["", "## 4. The shipped policy on problems it never saw", "",
              f"`collm eval --bank {Path(args.bank).name} --policy {sh['path']}` (8 draw orders; the policy was "
              "calibrated on the shared bank's rows 0-639 for an average of 8 generations and uses no texts): "
              f"accuracy {sh['accuracy']:.3f} at {sh['samples']:.2f} generations and {sh['flops']:.3g} FLOPs per "
              f"problem; uniform majority needs {sh['ratio_bound'] if sh['ratio_bound'] != '=' else ''}"
              f"{sh['ratio_to_uniform']:.2f}x those FLOPs for the same accuracy on these rows.", ""]
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"tokens per FLOP unit: {tok:.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
