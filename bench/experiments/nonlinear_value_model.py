"""Would a nonlinear value model help the marginal allocator? An experiment,
not part of collm (it needs scikit-learn, which collm does not depend on):

    pip install scikit-learn==1.9.1
    python bench/experiments/nonlinear_value_model.py > bench/results/nonlinear_value_model.txt

The marginal policy's value models predict P(the answer after b generations
is right | the vote state after a generations), one logistic model per grid
pair (a, b). Here, on the same two-fold split of the shared bank as the
allocation benchmark (split 0), each is refitted as gradient-boosted trees
(HistGradientBoostingClassifier, two settings) and compared with the
logistic model on the held-out half: ROC AUC and log-loss, averaged over the
two folds and over grid pairs (a, a), (a, a+2 steps), (a, last).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collm.allocation import BankView  # noqa: E402
from intervals import two_fold  # noqa: E402
from collm.allocation.marginal import Marginal  # noqa: E402
from collm.bank import load_bank  # noqa: E402
from collm.difficulty.learned import fit_logistic, sigmoid  # noqa: E402

BANK = "/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"
MODELS = {
    "logistic (collm, L2 = 1)": None,
    "trees: 200 iterations, 15 leaves, lr 0.05": dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                      min_samples_leaf=20, l2_regularization=1.0),
    "trees: 60 iterations, depth 2, lr 0.05, 50 per leaf": dict(max_iter=60, learning_rate=0.05, max_depth=2,
                                                                min_samples_leaf=50, l2_regularization=5.0),
}


def main():
    view = BankView(load_bank(BANK))
    res: dict = {name: {"auc": [], "ll": []} for name in MODELS}
    for fit_v, test_v in two_fold(view, (0,)):
        m = Marginal(fit_seeds=2)
        m.state = {"answer_form": fit_v.answer_form}
        grid, X, Y = m._trajectories(fit_v, range(1000, 1002))  # also fits the group scorer, on this half only
        _, Xt, Yt = _test_trajectories(m, test_v, range(2000, 2002))
        G = len(grid)
        for a in range(G):
            for b in sorted({a, min(a + 2, G - 1), G - 1}):
                y = Yt[:, b]
                if not 0 < y.mean() < 1:
                    continue
                for name, kw in MODELS.items():
                    if kw is None:
                        p = sigmoid(Xt[:, a] @ fit_logistic(X[:, a], Y[:, b], 1.0))
                    else:
                        p = HistGradientBoostingClassifier(random_state=0, **kw).fit(X[:, a], Y[:, b]).predict_proba(Xt[:, a])[:, 1]
                    res[name]["auc"].append(roc_auc_score(y, p))
                    res[name]["ll"].append(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)))
    print(f"{'value model':55s} held-out AUC   log-loss   ({len(res[next(iter(res))]['auc'])} (fold, a, b) cells)")
    for name, r in res.items():
        print(f"{name:55s} {np.mean(r['auc']):.3f}          {np.mean(r['ll']):.4f}")


def _test_trajectories(m, view, seeds):
    """Features and outcomes on the held-out half with the scorer fitted on the other half."""
    grid = [g for g in m.params["grid"] if g <= view.K + 1]
    X, Y = [], []
    for sd in seeds:
        s = view.sampler(sd)
        idx = np.arange(s.P)
        s.request(idx, 1, greedy=True)
        s.request(idx, view.K)
        for j in range(s.P):
            ds, qt = s.draws[j], s.q_tokens[j]
            X.append([m._features(ds[:a], qt, view.max_tokens) for a in grid])
            Y.append([s.correct(j, m.answer(ds[:b])) for b in grid])
    return grid, np.array(X), np.array(Y, float)


if __name__ == "__main__":
    main()
