"""Can a run save FLOPs by not finishing long samples? Three ways, replayed
on the shared bank (no model runs):

    python bench/experiments/token_cap.py

1. A lower max_tokens for every sample: a bank replay capped at L < 400
   (BankView(max_tokens=L)) is exact, since a cap only stops a generation: a
   sample shorter than L is the same sample, a longer one stops at L, pays L
   tokens and has no answer. Uniform majority-of-n under each cap.
2. A cap relative to the problem's greedy pass (which adaptive policies run
   first): how often a sample longer than c times the greedy's length is
   right, compared with the shorter ones, and what capping it would save.
3. short-m@k (stop a problem's k parallel samples once the first m have
   finished, and vote among those m): the stragglers pay only up to the m-th
   finisher's length.

Writes bench/results/token_cap.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from collm.allocation import BankView  # noqa: E402
from collm.allocation.base import get_policy  # noqa: E402
from collm.allocation.replay import replay, summary  # noqa: E402
from collm.bank import load_bank  # noqa: E402
from collm.bank.draws import orders  # noqa: E402
from collm.flops import inference_flops  # noqa: E402

SHARED = "/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
SEEDS = range(8)


def static_caps(bank, caps=(400, 350, 300, 250, 200), ns=(8, 16, 32)) -> list[str]:
    out = ["| max_tokens | " + " | ".join(f"maj@{n} accuracy | FLOPs" for n in ns) + " |",
           "|---|" + "---|---|" * len(ns)]
    for cap in caps:
        v = BankView(bank, max_tokens=cap)
        row = f"| {cap} |"
        for n in ns:
            s = summary([replay(get_policy("uniform", n=n).fit(v, samples=n), v, sd) for sd in SEEDS])
            row += f" {s['accuracy']:.3f} | {s['flops']:.3g} |"
        out.append(row)
    return out


def relative_to_greedy(A, cs=(1.0, 1.2, 1.4, 1.6, 2.0)) -> list[str]:
    n, ok, g = A["ntok"], A["ok"].astype(bool), A["greedy_n"][:, None]
    fin = n < 400
    out = ["| c | samples longer than c x greedy | right (longer, finished) | right (the rest, finished) | "
           "right samples lost | tokens saved |", "|---|---|---|---|---|---|"]
    for c in cs:
        over = n > c * g
        capped = np.minimum(n, np.maximum(np.ceil(c * g), 1))
        out.append(f"| {c:g} | {over.mean():.1%} | {ok[over & fin].mean():.1%} | {ok[~over & fin].mean():.1%} | "
                   f"{(ok & over).sum() / ok.sum():.1%} | {1 - capped.sum() / n.sum():.1%} |")
    return out


def short_m_at_k(A, rows, params, kms=((8, 4), (8, 6), (8, 8), (16, 8), (16, 12), (16, 16), (32, 16), (32, 24),
                                        (32, 32))) -> list[str]:
    n, ok, ans, pt = A["ntok"], A["ok"].astype(bool), A["ans"], A["prompt_tokens"]
    P, K = n.shape
    out = ["| k | m | accuracy | FLOPs/problem |", "|---|---|---|---|"]
    for k, m in kms:
        acc, tok = [], []
        for sd in SEEDS:
            order = orders(rows, K, sd)
            for j in range(P):
                cols = order[j, :k]
                fin = [c for c in cols[np.argsort(n[j, cols], kind="stable")] if n[j, c] < 400]
                first = fin[:m]
                stop = n[j, first[-1]] if len(first) == m else 400
                tok.append(pt[j] + np.minimum(n[j, cols], stop).sum())
                votes = Counter(int(ans[j, c]) for c in first if ans[j, c] >= 0)
                if not votes:
                    acc.append(False)
                    continue
                top = max(votes.values())
                c = next(c for c in first if ans[j, c] >= 0 and votes[int(ans[j, c])] == top)  # ties: first to finish
                acc.append(bool(ok[j, c]))
        out.append(f"| {k} | {m} | {np.mean(acc):.3f} | {inference_flops(params, np.mean(tok)):.3g} |")
    return out


def main():
    bank = load_bank(SHARED)
    v = BankView(bank)
    A = v.A
    n, ok = A["ntok"], A["ok"].astype(bool)
    lines = ["# Not finishing long samples", "",
             f"Bank: `{SHARED}` ({len(v)} problems x {v.K} samples, max 400 tokens). Replay only, "
             f"{len(SEEDS)} draw orders. FLOPs = 2 x {v.params:,} x (prompt + generated tokens).", "",
             "Command: `python bench/experiments/token_cap.py`  ",
             "Machine: 2-core CPU, no GPU. Date: 2026-12-02.", "",
             "## Sample length and correctness", "",
             "| generated tokens | share of samples | right | share of all tokens |", "|---|---|---|---|"]
    for lo, hi in ((0, 150), (150, 200), (200, 250), (250, 300), (300, 350), (350, 400), (400, 401)):
        m = (n >= lo) & (n < hi)
        label = "400 (cut)" if lo == 400 else f"{lo}-{hi - 1}"
        lines.append(f"| {label} | {m.mean():.1%} | {ok[m].mean():.1%} | {n[m].sum() / n.sum():.1%} |")
    lines += ["", "## 1. A lower max_tokens", "", "Uniform majority-of-n; a sample that reaches the cap never votes "
              "(at 400, the bank's own cut samples vote, as in the uniform baseline).", ""]
    lines += static_caps(bank)
    lines += ["", "## 2. A cap relative to the greedy pass", ""]
    lines += relative_to_greedy(A)
    lines += ["", "## 3. short-m@k", "", "k samples in parallel, stopped once m have finished (cut samples never "
              "finish); the first m vote, ties to the first to finish. m = k is plain majority over finished samples.", ""]
    lines += short_m_at_k(A, v.rows, v.params)
    lines += ["", "## Reading", "",
              "- Long samples are less often right (cut samples almost never), but the problems that need long "
              "solutions are the hard ones, so every cut removes right answers from exactly the problems that have "
              "few. Each lower max_tokens loses more accuracy than its FLOPs saving is worth: under a 300-token cap "
              "maj@32 is below uniform maj@16 at 400 tokens, which costs about half as much.",
              "- Within a problem, a sample's length relative to the greedy pass says little about whether it is "
              "right, so a cap relative to the greedy pass loses right answers faster than it saves tokens "
              "(table 2: it loses two to five times as large a share of the right samples as of the tokens).",
              "- short-m@k saves little here (8% of the FLOPs at k = 32, m = 16) because the stragglers have "
              "already spent most of their tokens when the m-th sample finishes, and the first m to finish vote "
              "worse than m samples taken at random: compare k = 16, m = 8 with maj@8 in table 1, which costs about "
              "half as much.",
              "- None of the three is kept. The allocation policies already keep cut samples out of the vote."]
    Path(ROOT / "bench/results/token_cap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
