"""Rounds against accuracy: the shipped marginal policy stepping to the next
grid point (what bank replays and a busy engine run) against its
rounds-bound step (step "auto" where a few prompts have the engine to
themselves: fewer, larger steps at the price lam_rounds), replayed on a bank.

A round is one request a prompt waits on (its greedy pass is the first):
live on an idle engine the rounds, not the FLOPs, set a prompt's wall time,
so the mean and p90 rounds per prompt say how long its chain of generations
is. Accuracy, generations and FLOPs per question say what the shorter chain
costs. Default bank: the held-out GSM8K rows 640-907 (the policy was
calibrated on rows 0-639), at the paces the policy records.

    python bench/rounds.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collm.allocation.base import Policy  # noqa: E402
from collm.allocation.replay import BankView  # noqa: E402
from collm.bank import load_bank  # noqa: E402

BANK = ROOT / "bench" / "results" / "gsm8k_heldout_qwen05b_k32.jsonl"
POLICY = ROOT / "collm" / "policies" / "qwen2.5-coder-0.5b.json"


def replay_rounds(pol, view, seed: int, bound: bool) -> dict:
    """One replay whose sampler says whether rounds bind; per-prompt rounds, generations, correctness, FLOPs."""
    s = view.sampler(seed)
    s.rounds_bound = lambda: bound
    asked = np.zeros(s.P)
    request = s.request

    def counted(idx, ks, greedy=False):
        np.add.at(asked, np.atleast_1d(np.asarray(idx, np.int64)), 1)
        return request(idx, ks, greedy)

    s.request = counted
    pol.run(s)
    ok = np.array([s.correct(j, pol.answer(s.draws[j])) for j in range(s.P)], float)
    return {"rounds": asked, "gens": s.gens.astype(float), "ok": ok, "flops": s.flops + s.est_flops}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bank", default=str(BANK))
    p.add_argument("--policy", default=str(POLICY))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "rounds.md"))
    args = p.parse_args(argv)
    base = Policy.from_file(args.policy)
    view = BankView(load_bank(args.bank))
    paces = [pc["target_samples"] for pc in base.state.get("paces", [])] or [None]
    lines = ["| pace (generations/q) | step | accuracy | generations/q | FLOPs/q | rounds mean | rounds p90 | rounds max |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for pace in paces:
        pol = base.paced(samples=pace)
        for bound, label in ((False, "next grid point"), (True, f"rounds-bound ({pol.params['rounds_step']})")):
            runs = [replay_rounds(pol, view, sd, bound) for sd in range(args.seeds)]
            r = np.concatenate([x["rounds"] for x in runs])
            lines.append(f"| {pace:g} | {label} | {np.mean([x['ok'].mean() for x in runs]):.3f} | "
                         f"{np.mean([x['gens'].mean() for x in runs]):.2f} | "
                         f"{np.mean([x['flops'].mean() for x in runs]):.3g} | {r.mean():.2f} | "
                         f"{np.percentile(r, 90):.0f} | {r.max():.0f} |")
            print(lines[-1], flush=True)
    rows = view.rows
    cmd = " ".join(["python bench/rounds.py", *(sys.argv[1:] if argv is None else argv)])
    text = (f"# Rounds a prompt waits on against accuracy (bench/rounds.py)\n\n"
            f"- command: `{cmd}`\n"
            f"- machine: {platform.machine()}, replay only (no model time); date {dt.date.today().isoformat()}\n"
            f"- bank: `{Path(args.bank).name}` ({len(rows)} GSM8K test rows {min(rows)}-{max(rows)}, never fitted "
            f"on), policy `{Path(args.policy).name}` at each recorded pace, {args.seeds} draw seeds\n\n"
            + "\n".join(lines) + "\n")
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
