"""A correctness probe: logistic regression, fitted on labelled samples, from
features the backend exposes for free.

Features (standardised before the fit):
    bank     mean token log-prob, log(1 + tokens): all a sample bank records,
             so a probe can be fitted on a bank's graded samples
    tokens   the above + the lowest token log-prob, the log-probs' standard
             deviation, the share of tokens below probability 1/2, and the
             mean log-prob of the last 16 tokens (needs per-token log-probs)
    hidden   "tokens" + the final token's hidden state, for engines that attach
             one to a Completion as `hidden` (a list of floats); the Backend
             contract does not require it, so a probe asking for it fails
             clearly on completions that lack it

    probe = Probe(features="bank").fit_bank(load_bank(path))
    probe.save("probe.json"); Probe.load("probe.json")
    probe.score(prompts, completions) -> P(correct) per completion

Step scores apply the same probe to each step's tokens: the probe was fitted
on whole answers, so a step score reads "how a whole answer with these token
statistics tends to fare" (documented approximation; no step labels ship).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from collm.errors import CollmError
from collm.verifiers.base import Verifier, step_token_logprobs

SHIPPED = Path(__file__).parent / "probes"  # probes fitted for the named models

FEATURES = {
    "bank": ["mean_lp", "log_tokens"],
    "tokens": ["mean_lp", "log_tokens", "min_lp", "std_lp", "low_frac", "tail_lp"],
}


def lp_features(token_logprobs, total: float | None = None, tokens: int | None = None, kind: str = "bank") -> list[float]:
    """Log-prob statistics of one piece of text (a completion or a step)."""
    lps = np.asarray(token_logprobs, float)
    n = len(lps) if tokens is None else int(tokens)
    if len(lps):
        mean = float(lps.mean())
    elif n > 0 and total is not None:
        mean = total / n
    else:
        mean = 0.0
    out = [mean, math.log1p(n)]
    if kind == "bank":
        return out
    if not len(lps):
        raise CollmError("this probe needs per-token log-probs, and the completion has none")
    tail = lps[-16:]
    return out + [float(lps.min()), float(lps.std()), float((lps < math.log(0.5)).mean()), float(tail.mean())]


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    """Newton's method (IRLS) for L2-regularised logistic regression; X has a
    bias column first (not penalised)."""
    w = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + reg * w
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class Probe(Verifier):
    name = "probe"

    def __init__(self, features: str = "bank", l2: float = 1.0, mode: str = "outcome", aggregation: str = "last"):
        super().__init__(mode, aggregation)
        if features not in ("bank", "tokens", "hidden"):
            raise CollmError(f"unknown probe features {features!r}; known: bank, tokens, hidden")
        self.features, self.l2 = features, float(l2)
        self.w: np.ndarray | None = None
        self.mu: np.ndarray | None = None
        self.sd: np.ndarray | None = None
        self.fitted_on: dict = {}

    # ---- features ----
    def _row(self, token_logprobs, total=None, tokens=None, hidden=None) -> list[float]:
        kind = "bank" if self.features == "bank" else "tokens"
        row = lp_features(token_logprobs, total, tokens, kind)
        if self.features == "hidden":
            if hidden is None:
                raise CollmError("this probe needs the final token's hidden state, and the engine does not expose it "
                                 "(use a probe with features 'tokens' or 'bank')")
            row += [float(x) for x in hidden]
        return row

    def completion_row(self, c) -> list[float]:
        return self._row(c.token_logprobs, c.logprob, c.tokens, getattr(c, "hidden", None))

    # ---- fitting ----
    def fit(self, X, y) -> "Probe":
        X, y = np.asarray(X, float), np.asarray(y, float)
        if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
            raise CollmError("the probe needs a non-empty feature matrix with one label per row")
        if y.min() == y.max():
            raise CollmError("the probe needs both correct and wrong samples to learn from")
        self.mu, self.sd = X.mean(0), X.std(0) + 1e-9
        Z = np.hstack([np.ones((len(X), 1)), (X - self.mu) / self.sd])
        self.w = _fit_logistic(Z, y, self.l2)
        self.fitted_on.setdefault("samples", int(len(X)))
        self.fitted_on.setdefault("positive_rate", float(y.mean()))
        return self

    def fit_completions(self, completions, labels) -> "Probe":
        """Fit on live completions graded correct (1) or wrong (0)."""
        self.fitted_on = {"source": "completions"}
        return self.fit([self.completion_row(c) for c in completions], [float(bool(v)) for v in labels])

    def fit_bank(self, bank, finished_only: bool = True) -> "Probe":
        """Fit on a bank's graded samples (features 'bank' only: a bank keeps
        each sample's summed log-prob and length, not per-token values).
        Samples without an answer or cut at max_tokens are left out: they
        never vote, so the probe never has to judge them."""
        if self.features != "bank":
            raise CollmError("a bank records only summed log-probs and lengths: fit it with features='bank'")
        cap = (bank.header.get("sampling") or {}).get("max_tokens")  # banks without finish reasons
        X, y = [], []
        for p in bank.problems:
            for s in p.samples:
                cut = s.f == "length" or (s.f is None and cap is not None and s.n >= cap)
                if finished_only and (s.a is None or cut):
                    continue
                X.append(self._row([], s.lp, s.n))
                y.append(float(s.ok))
        self.fitted_on = {"source": "bank", "bank": str(bank.path), "problems": len(bank)}
        return self.fit(X, y)

    # ---- scoring ----
    def predict(self, X) -> np.ndarray:
        if self.w is None:
            raise CollmError("the probe is not fitted: fit it or load a saved one")
        X = np.atleast_2d(np.asarray(X, float))
        if X.shape[1] != len(self.mu):
            raise CollmError(f"the probe expects {len(self.mu)} features, got {X.shape[1]}")
        z = self.w[0] + ((X - self.mu) / self.sd) @ self.w[1:]
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, prompts, completions):
        return [float(x) for x in self.predict([self.completion_row(c) for c in completions])]

    def score_steps(self, prompts, completions):
        out = []
        for c in completions:
            rows = [self._row(lps, hidden=getattr(c, "hidden", None)) for lps in step_token_logprobs(c) if lps]
            out.append([float(x) for x in self.predict(rows)] if rows else [])
        return out

    # ---- persistence ----
    def to_dict(self) -> dict:
        if self.w is None:
            raise CollmError("the probe is not fitted")
        names = FEATURES["bank" if self.features == "bank" else "tokens"]
        return {"collm_probe": 1, "features": self.features, "feature_names": names, "l2": self.l2,
                "weights": self.w.tolist(), "mean": self.mu.tolist(), "std": self.sd.tolist(),
                "fitted_on": self.fitted_on}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path, mode: str = "outcome", aggregation: str = "last") -> "Probe":
        """A probe file, or a shipped probe by model name (collm/verifiers/probes/NAME.json)."""
        path = Path(path)
        if not path.is_file() and (SHIPPED / f"{path}.json").is_file():
            path = SHIPPED / f"{path}.json"
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.json")))
            raise CollmError(f"probe file not found: {path} (shipped probes: {shipped or 'none'})")
        try:
            d = json.loads(path.read_text())
            if not isinstance(d, dict) or "collm_probe" not in d:
                raise ValueError("no 'collm_probe' key")
            p = cls(d["features"], d.get("l2", 1.0), mode, aggregation)
            p.w, p.mu, p.sd = (np.asarray(d[k], float) for k in ("weights", "mean", "std"))
            p.fitted_on = d.get("fitted_on", {})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CollmError(f"{path}: not a probe file ({e})") from None
        if len(p.w) != len(p.mu) + 1 or len(p.mu) != len(p.sd):
            raise CollmError(f"{path}: inconsistent probe weights")
        return p

    def describe(self) -> dict:
        return {**super().describe(), "features": self.features}
