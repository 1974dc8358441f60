"""Benchmark of the verifier-guided strategies.

    python bench/strategies.py rm-table     real reward-model scores: majority vs weighted vs best-of-N
    python bench/strategies.py replay       GSM8K bank (640 problems x 32 samples of Qwen2.5-Coder-0.5B):
                                            majority / weighted / best-of-N per difficulty bin and budget,
                                            at no model cost; fits the per-bin strategy policy (2-fold CV)
    python bench/strategies.py live --model qwen2.5-coder-0.5b --per-bin 2 --n 4
                                            every strategy live on a GSM8K subset: accuracy per bin,
                                            FLOPs, wall-clock against best-of-N at equal N
    python bench/strategies.py report       rebuild bench/results/strategies.md and docs/strategies_*.png

Each step writes its results under bench/results/ as it goes (live: one JSON
line per finished chunk; a rerun skips what is done), and `report` assembles
whatever is there. Difficulty bins are Snell et al.'s: problems sorted by the
bank's pass@1 and cut in five equal bins, 1 = easiest
(collm.bank.evaluate.difficulty_levels).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from collm.bank import load_bank  # noqa: E402
from collm.bank.evaluate import difficulty_levels  # noqa: E402
from collm.strategies.replay import method_accuracy  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


COMMIT = _commit()
DOCS = ROOT / "docs"
BANK = Path("/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl")
KS = (1, 2, 4, 8, 16, 32)
CUT = 400  # the bank's max_new_tokens: a sample this long was cut, it never votes

REPLAY_METHODS = {
    "majority": ("majority", {}),
    "weighted-sc": ("weighted", {"verifier": "self-certainty"}),
    "best-sc": ("best", {"verifier": "self-certainty"}),
    "weighted-probe": ("weighted", {"verifier": "probe"}),
    "best-probe": ("best", {"verifier": "probe"}),
}

METHOD_KEYS = {"majority": "majority", "weighted": "weighted-sc", "best": "best-sc",
               "weighted-probe": "weighted-probe", "best-probe": "best-probe"}
SHIPPED = ROOT / "collm" / "policies" / "qwen2.5-coder-0.5b.strategies.json"


# ---------------------------------------------------------------- rm table
def cmd_rm_table(args):
    from rm_table import grading_agreement, load_rm_rows, rm_table

    rows = load_rm_rows()
    t = rm_table(rows)
    by_level = {}
    for lv in sorted({r["level"] for r in rows}):
        sub = [r for r in rows if r["level"] == lv]
        by_level[lv] = {"problems": len(sub), **{m: rm_table(sub, ns=(8,))[m][8] for m in ("majority", "weighted", "best", "pass")}}
    out = {"table": {m: {str(n): v for n, v in row.items()} for m, row in t.items()},
           "by_level": by_level, "agreement": grading_agreement(rows), "problems": len(rows)}
    (RESULTS / "strategies_rm.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out["table"], indent=1))


# ---------------------------------------------------------------- replay
def probe_scores(A, answered, folds, seed=0):
    """Self-fitted correctness probe (features: mean log-prob, log tokens),
    two-fold: each half of the problems is scored by a probe fitted on the other."""
    from collm.verifiers import Probe

    n = np.maximum(A["ntok"], 1)
    X = np.stack([A["lp"] / n, np.log1p(A["ntok"])], axis=-1)  # [P, K, 2]
    out = np.zeros(A["lp"].shape)
    for f in range(2):
        tr = (folds != f)[:, None] & answered
        pr = Probe().fit(X[tr], A["ok"][tr].astype(float))
        te = folds == f
        out[te] = pr.predict(X[te].reshape(-1, 2)).reshape(out[te].shape)
    return out


def cmd_replay(args):
    from collm.strategies.select import fit_strategy_policy

    bank = load_bank(args.bank)
    A = bank.arrays()
    P, K = A["ok"].shape
    ks = [k for k in KS if k <= K]
    level = difficulty_levels(bank, 5)
    answered = (A["ans"] >= 0) & (A["ntok"] < CUT)
    folds = np.random.default_rng(args.seed).permutation(P) % 2
    t0 = time.time()
    acc = method_accuracy(bank, ks, range(args.seeds), {"probe": probe_scores(A, answered, folds)})
    acc = {METHOD_KEYS[m]: a for m, a in acc.items() if m in METHOD_KEYS}
    tokens = np.where(A["ntok"] > 0, A["ntok"], 0).mean()
    res = {"bank": str(args.bank), "problems": P, "seeds": args.seeds, "ks": ks, "cut": CUT,
           "mean_tokens": float(tokens), "seconds": time.time() - t0,
           "overall": {m: {str(k): float(a[:, j].mean()) for j, k in enumerate(ks)} for m, a in acc.items()},
           "bins": {str(b): {"problems": int((level == b).sum()),
                             **{m: {str(k): float(a[level == b, j].mean()) for j, k in enumerate(ks)}
                                for m, a in acc.items()}} for b in range(1, 6)}}
    # a probe fitted on the whole bank, shipped for --verifier probe:qwen2.5-coder-0.5b
    from collm.verifiers import Probe

    Probe().fit_bank(bank).save(ROOT / "collm" / "verifiers" / "probes" / "qwen2.5-coder-0.5b.json")
    # the per-bin strategy policy, chosen by two-fold cross-validation
    records = []
    for m, (name, settings) in REPLAY_METHODS.items():
        if "probe" in m:
            continue  # a bank-fitted probe would need its file shipped beside the policy
        for i in range(P):
            for j, k in enumerate(ks):
                records.append({"problem": int(bank.problems[i].i), "bin": int(level[i]), "budget": k,
                                "strategy": name, "settings": settings, "correct": float(acc[m][i, j])})
    rows = [int(p.i) for p in bank.problems]
    pol = fit_strategy_policy(records, folds=2, seed=args.seed, fold_of_problem={rows[i]: int(folds[i]) for i in range(P)})
    pol.meta.update({"source": "bench/strategies.py replay", "bank": BANK.name, "model": "qwen2.5-coder-0.5b",
                     "bins": "collm.bank.evaluate.difficulty_levels (1 = easiest)"})
    pol.save(RESULTS / "strategy_policy_gsm8k_qwen05b.json")
    res["policy_cv"] = pol.cv
    res["predicted"] = fit_predicted_policy(bank, acc, ks, folds, args.seed, args.seeds)
    res["policy_cv_overall"] = {str(k): pol.held_out_accuracy(k) for k in ks}  # over all problems
    (RESULTS / "strategies_replay.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res["overall"], indent=1))


def fit_predicted_policy(bank, acc, ks, folds, seed, seeds):
    """The per-bin choice with bins predicted from the question (no oracle),
    cross-fitted on the same two folds as the choice itself (collm calibrate
    --strategies: collm.strategies.replay.fit_bank_strategy_policy); shipped
    as the model's strategy policy."""
    from collm.strategies.replay import fit_bank_strategy_policy

    pol = fit_bank_strategy_policy(bank, ks, range(seeds), seed)
    pol.meta.update({"source": "python bench/strategies.py replay (collm calibrate --strategies)", "bank": BANK.name})
    pol.save(SHIPPED)
    h = pol.meta["bins_heldout"]
    out = {"spearman_heldout": h["spearman"], "same_bin": h["same_bin"], "within_one_bin": h["within_one_bin"],
           "estimator_flops": h["estimator_flops"], "cv": pol.cv,
           "overall": {str(k): pol.held_out_accuracy(k) for k in ks}}
    out["choices"] = {str(b): {str(k): pol.table[b][k]["strategy"] for k in ks} for b in sorted(pol.table)}
    return out


# ---------------------------------------------------------------- live
LIVE = {  # name -> (strategy, settings); "bon" samples once, scored three ways
    "bon": ("majority", {}),
    "beam": ("beam", {"beam_width": 4}),
    "dvts": ("dvts", {"beam_width": 4}),
    "lookahead": ("lookahead", {"beam_width": 4, "lookahead": 1}),
    "revisions": ("revisions", {}),
}


def live_subset(per_bin: int, seed: int):
    """per_bin problems from each difficulty bin of the bank (seeded pick),
    in rounds: the c-th pick of bins 1..5, then the next; so chunks of 5 hold
    one problem per bin and a smaller --per-bin is a prefix of a larger one."""
    from collm.datasets import load_dataset

    bank = load_bank(BANK)
    level = difficulty_levels(bank, 5)
    rng = np.random.default_rng(seed)
    perms = {b: rng.permutation(np.flatnonzero(level == b)) for b in range(1, 6)}
    pick = [(int(bank.problems[perms[b][c]].i), b) for c in range(per_bin) for b in range(1, 6)]
    probs = {p.id: p for p in load_dataset("gsm8k", "test", 0, 640)}
    return [(probs[i], b) for i, b in pick]


def cmd_live(args):
    from collm.answers import get_task
    from collm.backends import load_backend
    from collm.prompts import Prompt
    from collm.strategies import get_strategy
    from collm.verifiers import get_verifier
    from collm.vote import best_score, weighted

    out_path = RESULTS / "strategies_live.jsonl"
    done = set()
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            done.add((d["model"], d["strategy"], d["n"], d["chunk"], d["max_tokens"]))
    subset = live_subset(args.per_bin, args.seed)
    task = get_task("gsm8k")
    backend = load_backend(args.model, args.engine)
    sc = get_verifier("self-certainty")
    chunks = [subset[i:i + args.chunk] for i in range(0, len(subset), args.chunk)][:args.chunks]
    # strategies interleaved chunk by chunk, so that a change in the machine's load hits all alike
    for n in args.n:
        for c, chunk in enumerate(chunks):
            for name in args.strategies.split(","):
                strat, settings = LIVE[name]
                key = (args.model, name, n, c, args.max_tokens)
                if key in done:
                    continue
                prompts = [Prompt(p.question, id=p.id) for p, _ in chunk]
                s = get_strategy(strat, **settings)
                beams = max(1, n // (1 + settings.get("lookahead", 0)))  # lookahead: N(k+1) generations in all
                t, cpu = time.time(), time.process_time()
                answers = s.run(backend, prompts, beams, task, temperature=0.8, max_tokens=args.max_tokens,
                                seed=args.seed)
                secs, cpu = time.time() - t, time.process_time() - cpu
                rows = []
                for (p, b), a in zip(chunk, answers):
                    row = {"problem": p.id, "bin": b, "answer": a.answer, "correct": task.grade(a.answer, p.gold),
                           "flops": a.usage.flops, "tokens": a.usage.completion_tokens,
                           "prompt_tokens": a.usage.prompt_tokens,
                           "finished": sum(1 for x in a.completions if x.finished)}
                    if name == "bon":  # the same samples, weighted and best-of-N by self-certainty
                        ansl = [x.answer for x in a.completions]
                        w = sc([p] * len(a.completions), a.completions) if a.completions else []
                        wa = weighted(ansl, w)[0]
                        row["weighted"] = task.grade(wa, p.gold)
                        row["best"] = task.grade(best_score(ansl, w), p.gold)
                    rows.append(row)
                rec = {"model": args.model, "engine": backend.name, "commit": COMMIT, "strategy": name, "n": n, "chunk": c,
                       "max_tokens": args.max_tokens, "seconds": secs, "cpu_seconds": cpu, "rows": rows}
                with out_path.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                acc = sum(r["correct"] for r in rows) / len(rows)
                print(f"{name} n={n} chunk {c}: {secs:.1f} s, accuracy {acc:.2f}", file=sys.stderr, flush=True)
    backend.close()


# ---------------------------------------------------------------- report
def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def live_summary():
    path = RESULTS / "strategies_live.jsonl"
    if not path.exists():
        return None
    agg: dict = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)
        k = (d["model"], d["max_tokens"], d["n"])
        e = agg.setdefault(k, {})
        names = [d["strategy"]] + (["weighted", "best"] if d["strategy"] == "bon" else [])
        for nm in names:
            x = e.setdefault(nm, {"seconds": 0.0, "cpu": 0.0, "rows": [], "chunks": {}, "cpu_chunks": {}})
            if d["chunk"] in x["chunks"]:
                continue
            x["chunks"][d["chunk"]] = d["seconds"]
            x["cpu_chunks"][d["chunk"]] = d.get("cpu_seconds", d["seconds"])
            x["seconds"] += d["seconds"]
            x["cpu"] += d.get("cpu_seconds", d["seconds"])
            x["rows"] += [{**r, "correct": r[nm] if nm in ("weighted", "best") else r["correct"]} for r in d["rows"]]
    return agg


FINDINGS = """## Findings

- Real reward model (MATH, 100 x 8): weighted best-of-N and best-of-N by top
  reward both beat majority vote at every N > 1 (95.0% against 93.0% at N = 8,
  pass@8 97.0%); they part ways on single problems (best-of-N wins where the
  one right answer is a lone high-reward sample, weighted where the right
  answer is common but not the top score).
- GSM8K bank, self-certainty as the verifier: weighted voting beats majority at
  every budget (+1.1 to +3.4 points at N = 2..32); the single top score falls
  behind as N grows (it over-trusts one confident sample) except on the hard
  bins 3 and 4, where best-of-N by score is the best method at N >= 4. The
  per-bin choice by 2-fold cross-validation (mostly weighted on bins 1-2, best
  on bins 3-4) beats every fixed method on held-out problems at N >= 4 (Snell
  et al.'s compute-optimal strategy, with an oracle difficulty bin).
- The per-bin choice needs the oracle's bins. Fitted on bins predicted from
  the question before any generation (the shipped
  collm/policies/qwen2.5-coder-0.5b.strategies.json, used by `collm ask
  --strategy auto` and `collm eval --policy`), it picks the weighted vote on
  every bin from N = 2 on and does no better than always weighting (held out:
  39.3% at N = 16, 40.9% at N = 32 against 39.3% and 41.7%). Bins from a
  hidden-state probe, a much better difficulty predictor, do no better
  (bench/results/hidden_state_prior.md): the gain comes from telling apart the
  hard-but-solvable bins 3-4 (where best-of-N by score wins) from the never-solved
  bin 5, which only many samples do.
- Beam search and DVTS, live with self-certainty as the process verifier
  (N = 16 on ten problems, two per bin; N = 4 on five): no gain here, and
  beam search hurts. At N = 16 best-of-N majority is right on 4 of 10 (best by
  score 5), DVTS on 2, beam search on 1. The cause is visible in the runs:
  self-certainty rewards confident steps, and a confident path is often a long
  or repetitive one, so the search keeps paths that reach the 256-token budget
  unfinished (unfinished candidates never count): beam search ended with no
  finished candidate on 6 of the 10 problems, DVTS on 3, best-of-N on none.
  That is Snell et al.'s warning in its strongest form: search over-optimises a
  weak verifier, most on easy problems (beam search lost both bin-1 problems
  best-of-N solved). With a real PRM (`--verifier URL`) search is where they
  found gains on medium and hard problems; a 0.5B model's own certainty is not
  that verifier, and these 10 problems cannot show a hard-problem gain.
- Cost: beam search and DVTS take 1.45x and 1.59x best-of-N's wall-clock (and
  CPU time) at equal N = 16, inside the 2x target (1.5-1.7x at N = 4, measured
  before the change that follows). At N = 16 the target needed the llama.cpp
  engine to decode every prompt of a call in one batch: before, a search round
  decoded the 4 children of one partial answer at a time and beam search took
  2.16x (table below). Counted FLOPs are 2.2-2.3x
  best-of-N's: each step re-prefills the question and the partial answer (no
  prefix cache is assumed across calls) and pruned children are paid for; the
  engine reuses the shared prefix's KV cells, so time grows less than FLOPs.
- Lookahead search (k = 1: N = 16 buys 8 beams) and sequential revisions
  (4 chains of 4 attempts at N = 16, the default ratio) on the first five
  problems: each right on 2 of 5, as best-of-N. Lookahead took 1.47x
  best-of-N's wall-clock and 3.0x its FLOPs (each kept step pays its rollout:
  N(k+1)) for nothing over plain beam search, as in Snell et al.; revisions
  took 2.2x wall-clock and 2.7x FLOPs (each attempt re-reads the earlier ones)
  and finished more answers within the budget (45 of 80 attempts against 26 of
  80 samples): a revision shortens an attempt that ran out of tokens. At N = 4
  (before the batching change) lookahead was right on 2 of 5, revisions on 1.
- Not run: N = 64 (about 3 hours per strategy for ten problems on this CPU)
  and more problems; per-bin live figures on 2 problems a bin are anecdotes,
  the bank replay above is the per-bin measurement for the vote strategies.
"""


def cmd_report(args):
    lines = ["# Verifier-guided strategies", ""]
    if (RESULTS / "strategies_live.jsonl").exists() and (RESULTS / "strategies_replay.json").exists():
        lines += [FINDINGS]
    env = f"machine: {platform.machine()} CPU, 2 cores shared with other jobs, no GPU; date {date.today().isoformat()}"
    rm = RESULTS / "strategies_rm.json"
    if rm.exists():
        d = json.loads(rm.read_text())
        from rm_table import to_markdown

        t = {m: {int(n): v for n, v in row.items()} for m, row in d["table"].items()}
        lines += ["## Real reward-model scores: majority vs weighted vs best-of-N", "",
                  "`python bench/strategies.py rm-table` (no model run; seconds). 100 MATH problems x 8 solutions",
                  "of a Qwen2.5-Math model with a reward model's score each",
                  "(bench/data/qwen25math_rm_maj_math_cot_100.jsonl). Answers re-extracted from the",
                  "text (last \\boxed{}) and graded with math-verify; answers math-verify finds equal vote together.",
                  "Each N < 8 is the exact mean over all C(8, N) subsets. Weighted sums sigmoid(reward) per answer.",
                  "", to_markdown(t), "",
                  f"math-verify agrees with the data's own grades on {100 * d['agreement']:.2f}% of the 800 samples.",
                  "", "At N = 8 by MATH level:", "", "| level | problems | majority | weighted | best | pass@8 |",
                  "|---|---|---|---|---|---|"]
        for lv, e in d["by_level"].items():
            lines.append(f"| {lv} | {e['problems']} | {_pct(e['majority'])} | {_pct(e['weighted'])} | "
                         f"{_pct(e['best'])} | {_pct(e['pass'])} |")
        lines += [""]
    rp = RESULTS / "strategies_replay.json"
    if rp.exists():
        d = json.loads(rp.read_text())
        ks = d["ks"]
        lines += ["## Best-of-N with verifiers per difficulty bin (GSM8K bank replay)", "",
                  f"`python bench/strategies.py replay` ({d['seconds']:.0f} s, no model run). The shared bank:",
                  f"{d['problems']} GSM8K test problems x 32 samples of Qwen2.5-Coder-0.5B (T = 0.8, max 400 tokens),",
                  f"replayed in {d['seeds']} seeded draw orders. Samples cut at {d['cut']} tokens never vote (as live).",
                  "Verifiers: self-certainty (sc: exp(mean token log-prob), from the bank's summed log-prob)",
                  "and the correctness probe (logistic regression on mean log-prob and log length, fitted",
                  "two-fold: each half of the problems scored by a probe fitted on the other half).", "",
                  "| method | " + " | ".join(f"N = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for m, row in d["overall"].items():
            lines.append(f"| {m} | " + " | ".join(_pct(row[str(k)]) for k in ks) + " |")
        if "policy_cv_overall" in d:
            lines.append("| per-bin choice, held out (2-fold CV) | "
                         + " | ".join(_pct(d["policy_cv_overall"][str(k)]) for k in ks) + " |")
        lines += ["", "Per difficulty bin (1 = easiest), N = 4 / 16 / 32:", "",
                  "| bin | problems | " + " | ".join(d["overall"]) + " |", "|---|---|" + "---|" * len(d["overall"])]
        for b, e in d["bins"].items():
            cells = [" / ".join(f"{100 * e[m][str(k)]:.1f}" for k in (4, 16, 32)) for m in d["overall"]]
            lines.append(f"| {b} | {e['problems']} | " + " | ".join(cells) + " |")
        pol = json.loads((RESULTS / "strategy_policy_gsm8k_qwen05b.json").read_text())
        lines += ["", "Strategy chosen per bin and budget by two-fold cross-validation",
                  "(bench/results/strategy_policy_gsm8k_qwen05b.json, loadable with",
                  "collm.policies.load_policy); held-out accuracy of the choice vs majority:", "",
                  "| bin | " + " | ".join(f"N = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for b in sorted(pol["table"], key=int):
            cells = []
            for k in ks:
                e, cv = pol["table"][b][str(k)], pol["cv"][f"{b}/{k}"]
                cells.append(f"{e['strategy']} ({_pct(cv['held_out_accuracy'])} vs {_pct(cv['majority_accuracy'])})")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += [""]
        if "predicted" in d:
            pr = d["predicted"]
            lines += ["### Bins predicted from the question: the shipped strategy policy", "",
                      "A new question has no pass@1. The same two-fold choice with bins predicted before any",
                      "generation (collm.difficulty.bins: a logistic model of the pass rate on question length,",
                      "prefix entropy over the first 32 question tokens and prompt NLL, cut at the pilot's",
                      "quantiles; fitted on one fold, binning the other, the choice cross-validated on the same",
                      "folds) is collm/policies/qwen2.5-coder-0.5b.strategies.json, what `collm ask --strategy auto`",
                      "and `collm eval --policy` use. On held-out problems the predicted difficulty has Spearman",
                      f"{pr['spearman_heldout']:.2f} with the true one; {100 * pr['same_bin']:.0f}% of problems land in their",
                      f"true bin, {100 * pr['within_one_bin']:.0f}% within one bin. Predicting costs one forward pass over",
                      f"the question, {pr['estimator_flops']:.3g} FLOPs per problem, "
                      f"{100 * pr['estimator_flops'] / (2 * 494_032_768 * d['mean_tokens']):.0f}% of decoding one average",
                      f"sample ({d['mean_tokens']:.0f} tokens); the table compares at equal generations, without it.", "",
                      "| held-out accuracy | " + " | ".join(f"N = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks),
                      "| always majority | " + " | ".join(_pct(d["overall"]["majority"][str(k)]) for k in ks) + " |",
                      "| always weighted (sc) | " + " | ".join(_pct(d["overall"]["weighted-sc"][str(k)]) for k in ks) + " |",
                      "| per-bin choice, oracle bins | " + " | ".join(_pct(d["policy_cv_overall"][str(k)]) for k in ks) + " |",
                      "| per-bin choice, predicted bins | " + " | ".join(_pct(pr["overall"][str(k)]) for k in ks) + " |",
                      "", "Chosen on all problems (the shipped policy), per predicted bin:", "",
                      "| predicted bin | " + " | ".join(f"N = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
            for b, row in pr["choices"].items():
                lines.append(f"| {b} | " + " | ".join(row[str(k)] for k in ks) + " |")
            lines += [""]
        plot_replay(d)
        lines += ["![per-bin accuracy against budget](../../docs/strategies_bins.png)", ""]
    live = live_summary()
    if live:
        lines += ["## Every strategy live on a GSM8K subset", "",
                  "`python bench/strategies.py live ...` then `report`. Problems drawn evenly from the five",
                  "difficulty bins; temperature 0.8; self-certainty as the verifier (process scores for the",
                  "searches, aggregation `last`; weighted final vote). FLOPs count every call's prefill and",
                  "decoded tokens; wall-clock is the whole subset's, one batched call per round. The CPU is",
                  "shared with other jobs, so CPU time (all threads of the process) is the steadier figure;",
                  "ratios against best-of-N are on the same problems, strategies interleaved chunk by chunk.", ""]
        for (model, mt, n), e in sorted(live.items()):
            base = e.get("bon")
            lines += [f"### {model}, N = {n}, max_tokens {mt}", "",
                      "| strategy | problems | accuracy | per bin 1..5 | FLOPs / problem | wall-clock | CPU time "
                      "| wall-clock vs best-of-N | CPU time vs best-of-N |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for nm in ("bon", "weighted", "best", "beam", "dvts", "lookahead", "revisions"):
                if nm not in e:
                    continue
                rows = e[nm]["rows"]
                acc = sum(r["correct"] for r in rows) / len(rows)
                per = []
                for b in range(1, 6):
                    rb = [r for r in rows if r["bin"] == b]
                    per.append(f"{sum(r['correct'] for r in rb)}/{len(rb)}" if rb else "-")
                fl = sum(r["flops"] for r in rows) / len(rows)
                common = [c for c in e[nm]["chunks"] if base and c in base["chunks"]]  # same problems only
                ratio = (sum(e[nm]["chunks"][c] for c in common) / sum(base["chunks"][c] for c in common)
                         if common else None)
                cratio = (sum(e[nm]["cpu_chunks"][c] for c in common) / sum(base["cpu_chunks"][c] for c in common)
                          if common else None)
                label = {"bon": "majority (best-of-N)", "weighted": "weighted (same samples)",
                         "best": "best by score (same samples)"}.get(nm, nm)
                lines.append(f"| {label} | {len(rows)} | {_pct(acc)} | {' '.join(per)} | {fl:.3g} | "
                             f"{e[nm]['seconds']:.0f} s | {e[nm]['cpu']:.0f} s | "
                             f"{'-' if ratio is None else f'{ratio:.2f}x'} | {'-' if cratio is None else f'{cratio:.2f}x'} |")
            lines += [""]
        old = RESULTS / "strategies_live_n16_per_prompt_decode.jsonl"
        if old.exists():
            recs = [json.loads(x) for x in old.read_text().splitlines() if x.strip()]
            base = next((r for r in recs if r["strategy"] == "bon"), None)
            lines += ["### The same N = 16 runs before prompts were batched together (first 5 problems)", "",
                      "The llama.cpp engine first decoded the prompts of one call one after another (each",
                      "prompt's samples together); a search round then decoded 4 children of one partial answer",
                      "at a time. Batching every prompt of a call into one decode (collm/backends/llamacpp_engine.py)",
                      "is what brought beam search and DVTS under 2x. Same problems, same settings, measured",
                      "while other jobs shared the CPU:", "",
                      "| strategy | wall-clock | CPU time | wall-clock vs best-of-N | CPU time vs best-of-N |",
                      "|---|---|---|---|---|"]
            for r in recs:
                lines.append(f"| {r['strategy'] if r['strategy'] != 'bon' else 'majority (best-of-N)'} | "
                             f"{r['seconds']:.0f} s | {r['cpu_seconds']:.0f} s | {r['seconds'] / base['seconds']:.2f}x | "
                             f"{r['cpu_seconds'] / base['cpu_seconds']:.2f}x |")
            lines += [""]
        plot_live(live)
        lines += ["![live strategies](../../docs/strategies_live.png)", ""]
    lines += [env, ""]
    (RESULTS / "strategies.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot_replay(d):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = d["ks"]
    methods = list(d["overall"])
    fig, axes = plt.subplots(1, 6, figsize=(20, 3.6), sharex=True)
    for ax, (title, e) in zip(axes, [("all problems", d["overall"])] + [(f"bin {b}", d["bins"][b]) for b in d["bins"]]):
        for m in methods:
            ax.plot(ks, [100 * e[m][str(k)] for k in ks], marker="o", ms=3, label=m)
        if title == "all problems" and "policy_cv_overall" in d:
            ax.plot(ks, [100 * d["policy_cv_overall"][str(k)] for k in ks], "k--", lw=1.2,
                    label="per-bin choice (2-fold CV)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(title)
        ax.set_xlabel("generation budget N")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle("GSM8K, Qwen2.5-Coder-0.5B bank: accuracy vs budget per difficulty bin (1 = easiest)")
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "strategies_bins.png", dpi=110)
    plt.close(fig)


def plot_live(live):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(live)
    fig, axes = plt.subplots(len(keys), 2, figsize=(11, 3.2 * len(keys)), squeeze=False)
    for (ax1, ax2), k in zip(axes, keys):
        e = live[k]
        names = [nm for nm in ("bon", "weighted", "best", "beam", "dvts", "lookahead", "revisions") if nm in e]
        acc = [100 * sum(r["correct"] for r in e[nm]["rows"]) / len(e[nm]["rows"]) for nm in names]
        base = e.get("bon")
        ratio = []
        for nm in names:
            common = [c for c in e[nm]["chunks"] if base and c in base["chunks"]]
            ratio.append(sum(e[nm]["cpu_chunks"][c] for c in common) / sum(base["cpu_chunks"][c] for c in common)
                         if common else 0.0)
        labels = ["majority" if nm == "bon" else nm for nm in names]
        ax1.bar(labels, acc, color="tab:blue")
        ax1.set_ylabel("accuracy (%)")
        ax1.set_title(f"{k[0]}, N = {k[2]}, max_tokens {k[1]}")
        ax2.bar(labels, ratio, color="tab:orange")
        ax2.axhline(2.0, color="red", ls="--", lw=1, label="2x target")
        ax2.axhline(1.0, color="gray", lw=1)
        ax2.set_ylabel("CPU time / best-of-N")
        ax2.legend(fontsize=8)
        for ax in (ax1, ax2):
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "strategies_live.png", dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("rm-table")
    r = sub.add_parser("replay")
    r.add_argument("--bank", type=Path, default=BANK)
    r.add_argument("--seeds", type=int, default=20)
    r.add_argument("--seed", type=int, default=0)
    lv = sub.add_parser("live")
    lv.add_argument("--model", default="qwen2.5-coder-0.5b")
    lv.add_argument("--engine", default=None)
    lv.add_argument("--per-bin", type=int, default=2)
    lv.add_argument("--n", type=int, nargs="+", default=[4])
    lv.add_argument("--max-tokens", type=int, default=256)
    lv.add_argument("--chunk", type=int, default=5, help="problems per batched run (results are saved per chunk)")
    lv.add_argument("--chunks", type=int, default=None, help="run only the first C chunks")
    lv.add_argument("--strategies", default="bon,beam,dvts,lookahead,revisions")
    lv.add_argument("--seed", type=int, default=0)
    sub.add_parser("report")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    {"rm-table": cmd_rm_table, "replay": cmd_replay, "live": cmd_live, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
