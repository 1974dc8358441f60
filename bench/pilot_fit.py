"""Fit on the pilot, evaluate on held-out rows: the program-answer and text
policies calibrated on a GSM8K *train* bank only, replayed on test rows >= 640
(which nothing in collm is fitted on).

    python bench/pilot_fit.py --train docs/banks/gsm8k_train_qwen05b_k16_rows0-151.jsonl \\
        --eval bench/results/gsm8k_heldout_qwen05b_k32.jsonl --budgets 4,8 --ship 8

For each budget B: `collm calibrate --policy marginal --budget B` on the train
bank, once with program answers (--execute-code) and once with text answers;
then each policy replayed on the held-out bank (mean of --seeds draw orders),
against two uniform baselines on the same held-out draws:

- majority over the same program answers (the honest baseline for a program
  policy: how much of its gain is the allocation, not the answers), and
- majority over the text answers (what a user gets without collm).

"x fewer FLOPs" = uniform FLOPs to reach the policy's held-out accuracy /
the policy's FLOPs (linear between uniform's points); "+" where the policy
beats uniform's largest K, so the ratio is a lower bound. With --ship, the
program policy at that budget is copied to collm/policies/ (the shipped file).

Results: bench/results/pilot_fit.md; the policies under bench/results/pilot_fit/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.intervals import uniform_per_problem  # noqa: E402
from collm.allocation.base import Policy  # noqa: E402
from collm.allocation.evaluate import compute_ratio, policy_report, uniform_points  # noqa: E402
from collm.allocation.replay import BankView, replay  # noqa: E402
from collm.bank import evaluate as bank_eval  # noqa: E402
from collm.bank.format import file_sha256, load_bank  # noqa: E402

OUT = ROOT / "bench" / "results" / "pilot_fit"
SHIPPED = ROOT / "collm" / "policies" / "qwen2.5-coder-0.5b.program.json"


def calibrate(train: str, budget: float, program: bool, out: Path) -> dict:
    cmd = [sys.executable, "-m", "collm", "calibrate", "--bank", train, "--policy", "marginal",
           "--budget", f"{budget:g}", "--out", str(out), "--json"] + (["--execute-code"] if program else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"calibrate failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return json.loads(out.read_text())


def ratio(points: list[dict], rep: dict) -> str:
    r = compute_ratio(points, rep["accuracy"], rep["flops"])
    return f"{r['ratio']:.2f}x" + ("+" if r["bound"] == ">=" else "")


def interval(view: BankView, uniform: BankView, policy_path: Path, seeds, n_boot: int = 2000,
             level: float = 0.9) -> str:
    """Paired percentile bootstrap over held-out problems of the ratio "uniform
    FLOPs to reach the policy's accuracy / the policy's FLOPs" (policy and
    uniform on the same resampled problems; a resample where uniform's
    largest K stays below the policy counts at uniform's largest K, as the
    point estimate's lower bound does). Gives the interval and the share of
    resamples where the policy needs fewer FLOPs than uniform (ratio > 1).
    The policy replays on `view`, uniform majority on `uniform` (the same
    problems: program answers for one, text answers for the other)."""
    pol = Policy.from_file(policy_path)
    runs = [replay(pol, view, s) for s in seeds]
    p_cor = np.mean([r["correct"] for r in runs], axis=0)
    p_flops = np.mean([r["flops"] for r in runs], axis=0)
    ks = list(range(1, view.K + 1))
    u_cor, u_flops = uniform_per_problem(uniform, ks)
    rng = np.random.default_rng(0)
    P = len(p_cor)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, P, P)
        pts = sorted(({"accuracy": float(u_cor[idx, j].mean()), "flops": float(u_flops[idx, j].mean())}
                      for j in range(len(ks))), key=lambda q: q["flops"])
        need = bank_eval.cost_to_reach(pts, float(p_cor[idx].mean()), key="flops")
        out.append((need if need is not None else pts[-1]["flops"]) / float(p_flops[idx].mean()))
    lo, hi = np.quantile(out, [(1 - level) / 2, (1 + level) / 2])
    return f"[{lo:.2f}, {hi:.2f}], > 1x in {np.mean(np.array(out) > 1):.0%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="docs/banks/gsm8k_train_qwen05b_k16_rows0-151.jsonl")
    ap.add_argument("--eval", default="bench/results/gsm8k_heldout_qwen05b_k32.jsonl")
    ap.add_argument("--budgets", default="4,8")
    ap.add_argument("--ship", type=float, default=None, help="copy the program policy at this budget to collm/policies/")
    ap.add_argument("--seeds", type=int, default=8, help="draw orders for the held-out replay")
    ap.add_argument("--out", default="bench/results/pilot_fit.md")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)

    train = load_bank(ROOT / args.train)
    held = load_bank(ROOT / args.eval)
    rows_t = (min(p.i for p in train.problems), max(p.i for p in train.problems))
    rows_e = (min(p.i for p in held.problems), max(p.i for p in held.problems))
    if held.header.get("dataset") == "gsm8k" and held.header.get("split") == "test" and rows_e[0] < 640:
        sys.exit(f"{args.eval} holds test rows below 640: not a held-out bank")
    print(f"train {args.train}: {len(train.problems)} problems, K={train.k}; "
          f"held-out {args.eval}: {len(held.problems)} problems, K={held.k}", flush=True)

    held_prog = held.with_program_answers()
    seeds = range(args.seeds)
    text_pts = uniform_points(BankView(held), range(20))
    prog_pts = uniform_points(BankView(held_prog), range(20))

    rows = []
    for b in budgets:
        for program in (True, False):
            name = f"{'program' if program else 'text'}_b{b:g}.policy.json"
            pol = calibrate(args.train, b, program, OUT / name)
            rep = policy_report(held_prog if program else held, OUT / name, seeds)
            mine = BankView(held_prog if program else held)
            ci_prog = interval(mine, BankView(held_prog), OUT / name, seeds) if program else ""
            ci_text = interval(mine, BankView(held), OUT / name, seeds)
            rows.append({"budget": b, "answers": "program" if program else "text", "file": name,
                         "cv_accuracy": pol["cv"]["accuracy"], "cv_samples": pol["cv"]["samples"],
                         "accuracy": rep["accuracy"], "samples": rep["samples"], "flops": rep["flops"],
                         "vs_program": ratio(prog_pts, rep) if program else "",
                         "vs_text": ratio(text_pts, rep), "in_sample": rep["in_sample"],
                         "ci_program": ci_prog, "ci_text": ci_text})
            print(f"  {name}: held-out accuracy {rep['accuracy']:.3f}, {rep['samples']:.2f} generations", flush=True)
    if args.ship is not None:
        shutil.copyfile(OUT / f"program_b{args.ship:g}.policy.json", SHIPPED)

    def curve(points):
        return " ".join(f"maj@{p['samples']} {p['accuracy']:.3f}" for p in points if p["samples"] in (1, 4, 8, 16, 32))

    lines = [
        "# Fitted on the train pilot, evaluated on held-out test rows",
        "",
        f"- command: `python bench/pilot_fit.py --train {args.train} --eval {args.eval} --budgets {args.budgets}"
        + (f" --ship {args.ship:g}" if args.ship is not None else "") + f" --seeds {args.seeds}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; date {started:%Y-%m-%d %H:%M} UTC",
        f"- pilot (fit): `{args.train}`, GSM8K **train** rows {rows_t[0]}-{rows_t[1]}, {len(train.problems)} problems, "
        f"K={train.k}, sha256 {file_sha256(ROOT / args.train)[:16]}...",
        f"- held out (evaluation only): `{args.eval}`, GSM8K test rows {rows_e[0]}-{rows_e[1]}, "
        f"{len(held.problems)} problems, K={held.k}; nothing was fitted on these rows",
        "- policies: `collm calibrate --policy marginal --budget B` on the pilot (program answers: `--execute-code`);"
        f" replayed on the held-out draws, mean of {args.seeds} draw orders",
        f"- held-out uniform, text answers: {curve(text_pts)}",
        f"- held-out uniform, program answers: {curve(prog_pts)}",
        "",
        "| budget | answers | pilot CV accuracy | held-out accuracy | generations | FLOPs/problem "
        "| x fewer FLOPs than majority of program answers | 90% interval | x fewer than majority of text answers "
        "| 90% interval |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['budget']:g} | {r['answers']} | {r['cv_accuracy']:.3f} | {r['accuracy']:.3f} | "
                     f"{r['samples']:.2f} | {r['flops']:.3g} | {r['vs_program'] or '-'} | {r['ci_program'] or '-'} | "
                     f"{r['vs_text']} | {r['ci_text']} |")
    lines += ["", "A ratio is the held-out uniform FLOPs needed for the policy's held-out accuracy, over the "
              "policy's FLOPs; the first column is the honest baseline for a program policy (the same answers, "
              "voted uniformly), the second what plain majority voting gives. Intervals: paired bootstrap over the "
              "held-out problems (2,000 resamples, policy and uniform on the same resampled problems; where "
              "uniform's maj@32 stays below the policy, the resample counts at maj@32's FLOPs, a lower bound), "
              "with the share of resamples where the policy needs fewer FLOPs than uniform."]
    if any(r["in_sample"] for r in rows):
        lines.append("WARNING: a policy was fitted on the bank it is evaluated on.")
    if args.ship is not None:
        lines.append(f"The program policy at budget {args.ship:g} ships as `{SHIPPED.relative_to(ROOT)}`; "
                     f"`collm eval --bank {args.eval} --execute-code --seeds {args.seeds} --policy "
                     f"{SHIPPED.relative_to(ROOT)}` prints its row (accuracy, generations, FLOPs, "
                     "ratio_to_uniform = the program-answer column; in_sample False).")
    (ROOT / args.out).write_text("\n".join(lines) + "\n")
    json.dump(rows, open(OUT / "rows.json", "w"), indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
