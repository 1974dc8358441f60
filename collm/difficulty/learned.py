"""A learned difficulty predictor: L2-regularised logistic regression in numpy.

Fitted on a pilot bank over any of the cheap signals (standardised), it
predicts a problem's pass rate; difficulty is 1 - that. The same small
fitter serves the allocation policies' value models.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Weights w (X's first column is the bias, not penalised) maximising the
    log-likelihood of y in [0, 1] minus l2/2 |w|^2, by Newton's method."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    w = np.zeros(d)
    reg = np.full(d, float(l2))
    reg[0] = 1e-6
    for _ in range(iters):
        p = sigmoid(X @ w)
        g = X.T @ (p - y) + reg * w
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(reg)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class LearnedDifficulty:
    """difficulty = 1 - sigmoid(standardised signals . w), fitted to pass rates."""

    def __init__(self, signals=("q_tokens", "prefix_entropy", "greedy_nll"), l2: float = 1.0):
        self.signals = tuple(signals)
        self.l2 = l2
        self.mean = self.std = self.w = None

    def _design(self, values: dict) -> np.ndarray:
        Z = np.stack([(np.asarray(values[s], float) - self.mean[i]) / self.std[i] for i, s in enumerate(self.signals)], 1)
        return np.concatenate([np.ones((len(Z), 1)), Z], 1)

    def fit(self, values: dict, pass_rate) -> "LearnedDifficulty":
        M = np.stack([np.asarray(values[s], float) for s in self.signals], 1)
        self.mean, self.std = M.mean(0), M.std(0) + 1e-9
        self.w = fit_logistic(self._design(values), np.asarray(pass_rate, float), self.l2)
        return self

    def predict(self, values: dict) -> np.ndarray:
        return 1.0 - sigmoid(self._design(values) @ self.w)

    def to_dict(self) -> dict:
        return {"signals": list(self.signals), "l2": self.l2, "mean": list(map(float, self.mean)),
                "std": list(map(float, self.std)), "w": list(map(float, self.w))}

    @classmethod
    def from_dict(cls, d: dict) -> "LearnedDifficulty":
        m = cls(d["signals"], d.get("l2", 1.0))
        m.mean, m.std, m.w = np.array(d["mean"]), np.array(d["std"]), np.array(d["w"])
        return m
