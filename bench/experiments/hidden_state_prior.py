"""Would a hidden-state difficulty probe help the marginal allocator? An
experiment, not part of collm (its probe step needs scikit-learn for ROC AUC):

    python bench/experiments/hidden_state_prior.py states     # Qwen hidden states of the bank's 640 prompts (torch, ~12 min on 2 CPU cores)
    python bench/experiments/hidden_state_prior.py probe      # how well a linear probe on them ranks difficulty
    python bench/experiments/hidden_state_prior.py allocate   # the marginal policy with the probe as an extra feature
    python bench/experiments/hidden_state_prior.py bins       # the per-bin strategy choice with bins from the probe

states: one forward pass over each templated prompt of the shared bank
(GSM8K test rows 0-639, the bank's system prompt), keeping the last prompt
token's hidden state at layers 12, 18 and 24 of 24 and the mean over the
question's tokens (bench/results/hidden_states_gsm8k_qwen05b.npz, float16,
not in git: rerun to make it).

probe: two-fold (4 random splits) logistic regression of each problem's pass
rate on the first k principal components of a hidden state plus log question
length; Spearman with the pass rate, and ROC AUC for telling never-solved
problems from contested ones (pass rate 0.1-0.5), against question length alone.

allocate: the marginal policy (learned scorer) as in bench/allocation.py,
two-fold CV over 2 splits x 4 seeds, with one more value-model feature: the
probe's log-odds of the pass rate (layer 18, last token, 64 components, L2
100), stacked so that no problem's feature comes from a probe fitted on it.

bins: the per-bin strategy choice of bench/strategies.py replay (majority,
self-certainty weighted, best-of-N by self-certainty; 20 draw orders) with
difficulty bins predicted by the same probe (fitted on one fold, binning the
other at the fitted fold's quantiles; the choice cross-validated on the same
folds), for 3 random splits, against always using the weighted vote.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from collm.bank import load_bank  # noqa: E402
from collm.difficulty.learned import fit_logistic, sigmoid  # noqa: E402

BANK = "/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
STATES = ROOT / "bench" / "results" / "hidden_states_gsm8k_qwen05b.npz"


def cmd_states():
    import torch

    from collm.backends import load_backend
    from collm.datasets import load_dataset
    from collm.prompts import Prompt

    bank = load_bank(BANK)
    system = bank.header["prompt"]["system"]
    probs = {p.id: p for p in load_dataset("gsm8k", "test", 0, 640)}
    be = load_backend("qwen2.5-coder-0.5b", "torch")
    L, D = be.model.config.num_hidden_layers, be.model.config.hidden_size
    layers = [L // 2, 3 * L // 4, L]
    last = np.zeros((len(bank), len(layers), D), np.float32)
    mean = np.zeros_like(last)
    t = time.time()
    with torch.inference_mode():
        for j, bp in enumerate(bank.problems):
            ids, (s, e) = be.encode(Prompt(probs[bp.i].question, system=system))
            h = be.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            for li, layer in enumerate(layers):
                last[j, li] = h[layer][0, -1].float().numpy()
                mean[j, li] = h[layer][0, s:e].float().mean(0).numpy()
            if j % 100 == 0:
                print(f"{j}/{len(bank)} {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    np.savez_compressed(STATES, last=last.astype(np.float16), mean=mean.astype(np.float16), layers=layers,
                        rows=[p.i for p in bank.problems])
    print(f"{len(bank)} prompts in {time.time() - t:.0f} s -> {STATES}")


def _load():
    bank = load_bank(BANK)
    d = np.load(STATES)
    pr = bank.arrays()["ok"].mean(1)
    qlog = np.log(np.array([p.q_tokens for p in bank.problems], float))
    return bank, d, pr, qlog


def probe_fitter(H, qlog, pr, k=64, l2=100.0):
    """fit(idx) -> predict(jdx): log-odds of the pass rate from PCA(k) of H and log length, fitted on idx."""
    def fit(idx):
        mu = H[idx].mean(0)
        V = np.linalg.svd(H[idx] - mu, full_matrices=False)[2][:k].T

        def feats(jj):
            return np.concatenate([(H[jj] - mu) @ V, qlog[jj, None]], 1)

        Z0 = feats(idx)
        m0, s0 = Z0.mean(0), Z0.std(0) + 1e-6

        def design(jj):
            return np.concatenate([np.ones((len(jj), 1)), (feats(jj) - m0) / s0], 1)

        w = fit_logistic(design(idx), pr[idx], l2)

        def predict(jj):
            p = np.clip(sigmoid(design(jj) @ w), 1e-3, 1 - 1e-3)
            return np.log(p / (1 - p))
        return predict
    return fit


def cmd_probe():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    bank, d, pr, qlog = _load()
    P = len(pr)
    contested = (pr == 0) | ((pr >= 0.1) & (pr <= 0.5))

    def cv(fit):
        rho, auc = [], []
        for sp in range(4):
            perm = np.random.default_rng(sp).permutation(P)
            halves = [perm[: P // 2], perm[P // 2:]]
            pred = np.zeros(P)
            for f in range(2):
                pred[halves[1 - f]] = fit(halves[f])(halves[1 - f])
            rho.append(spearmanr(pred, pr).statistic)
            auc.append(roc_auc_score(pr[contested] > 0, pred[contested]))
        return np.mean(rho), np.mean(auc)

    print("| features | Spearman with pass rate | AUC never-solved vs contested |")
    print("|---|---|---|")
    none = np.zeros((P, 1), np.float32)
    print("| log question length alone | %.3f | %.3f |" % cv(probe_fitter(none, qlog, pr, k=0, l2=1.0)))
    for pool in ("last", "mean"):
        for li, layer in enumerate(d["layers"]):
            H = d[pool][:, li].astype(np.float32)
            for k in (16, 64):
                r = cv(probe_fitter(H, qlog, pr, k=k, l2=100.0))
                what = "last prompt token" if pool == "last" else "mean over the question"
                print(f"| layer {layer}, {what}, {k} components + length | {r[0]:.3f} | {r[1]:.3f} |", flush=True)


def cmd_allocate():
    import collm.allocation.marginal as marginal
    from collm.allocation import BankView
    from collm.allocation.base import get_policy
    from intervals import two_fold
    from collm.allocation.replay import replay, summary

    bank, d, pr, qlog = _load()
    H = d["last"][:, 1].astype(np.float32)  # layer 18, last prompt token
    fit = probe_fitter(H, qlog, pr)
    rows = np.array([p.i for p in bank.problems])
    pos = {int(r): j for j, r in enumerate(rows)}
    prior = np.zeros(len(rows))
    # the value model's features get one more entry, the probe's log-odds; the
    # prompt's bank row rides along in q_tokens (row + 1) * 10^5 + q_tokens
    plain = marginal.features
    use = {"prior": False}

    def features(draws, q_tokens, max_tokens, vote_cut=False, form=None, scorer=None):
        row, q = divmod(int(q_tokens), 100000)
        a, x = plain(draws, q, max_tokens, vote_cut, form, scorer)
        return a, np.append(x, prior[pos[row - 1]] / 3 if use["prior"] else 0.0)

    marginal.features = features
    print("| value model | budget | accuracy | generations / problem | FLOPs / problem |")
    print("|---|---|---|---|---|")
    for with_prior in (False, True):
        use["prior"] = with_prior
        for budget in (8.0, 12.0):
            runs = []
            for sp in (0, 1):
                view = BankView(bank)
                for fit_v, test_v in two_fold(view, (sp,)):
                    fi = np.array([pos[int(r)] for r in fit_v.rows])
                    ti = np.array([pos[int(r)] for r in test_v.rows])
                    h = np.random.default_rng(7).permutation(len(fi))
                    a_, b_ = fi[h[: len(fi) // 2]], fi[h[len(fi) // 2:]]
                    prior[b_], prior[a_] = fit(a_)(b_), fit(b_)(a_)  # stacked on the fit half
                    prior[ti] = fit(fi)(ti)
                    for v, ix in ((fit_v, fi), (test_v, ti)):
                        v.A["q_tokens"] = v.A["q_tokens"] + 100000 * (rows[ix] + 1)
                    pol = get_policy("marginal").fit(fit_v, samples=budget)
                    runs += [replay(pol, test_v, s, test_v.budget(samples=budget)) for s in range(4)]
            s = summary(runs)
            label = "with the hidden-state prior" if with_prior else "without the prior (as in BENCHMARKS.md)"
            print(f"| {label} | {budget:g} | {s['accuracy']:.4f} | {s['samples']:.2f} | {s['flops']:.3g} |", flush=True)


def cmd_bins():
    from collm.strategies.replay import method_accuracy
    from collm.strategies.select import fit_strategy_policy

    bank, d, pr, qlog = _load()
    P, ks = len(pr), [1, 2, 4, 8, 16, 32]
    acc = method_accuracy(bank, ks, range(20))
    fit = probe_fitter(d["last"][:, 1].astype(np.float32), qlog, pr)
    rows = [int(p.i) for p in bank.problems]
    print("| held-out accuracy | " + " | ".join(f"N = {k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    print("| always weighted | " + " | ".join(f"{acc['weighted'][:, j].mean():.3f}" for j in range(len(ks))) + " |")
    for split in range(3):
        folds = np.random.default_rng(split).permutation(P) % 2
        level = np.zeros(P, int)
        for f in range(2):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            probe = fit(tr)
            edges = np.quantile(-probe(tr), [0.2, 0.4, 0.6, 0.8])  # bin 1 = highest predicted pass rate
            level[te] = np.searchsorted(edges, -probe(te), side="right") + 1
        recs = [{"problem": rows[i], "bin": int(level[i]), "budget": k, "strategy": m, "settings": {},
                 "correct": float(acc[m][i, j])}
                for m in ("majority", "weighted", "best") for i in range(P) for j, k in enumerate(ks)]
        pol = fit_strategy_policy(recs, fold_of_problem={rows[i]: int(folds[i]) for i in range(P)})
        out = [pol.held_out_accuracy(k) for k in ks]
        print(f"| per-bin choice, probe bins, split {split} | " + " | ".join(f"{x:.3f}" for x in out) + " |")


if __name__ == "__main__":
    cmds = {"states": cmd_states, "probe": cmd_probe, "allocate": cmd_allocate, "bins": cmd_bins}
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cmds)}")
    cmds[sys.argv[1]]()
