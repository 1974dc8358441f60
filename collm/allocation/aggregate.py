"""A learned group scorer: which of a prompt's answers to return.

Majority vote only counts; the scorer also weighs how sure the model was of
each answer (mean and best log-prob per token of its draws, and the same
measured against the prompt's other draws: a per-sample evidence sum, i.e. a
confidence-weighted vote), whether the greedy pass gave it, its draws'
length, whether the answer has the task's form, cheap priors on its value
(its size; 0 and numbers past 10^4 are rarely right on GSM8K) and, when the
draws' texts are known, how many of its draws hold an arithmetic slip. It is a
logistic model of P(this answer is right | its group's features), on
standardised features, fitted on replays of the pilot bank; the answer is the
group it rates highest. A cheap outcome verifier, made only of what sampling
already returned.
"""

from __future__ import annotations

import numpy as np

from collm.allocation.state import ALL_GROUP_FEATURES, GROUP_FEATURES, TEXT_FEATURES, groups
from collm.difficulty.learned import fit_logistic, sigmoid
from collm.errors import CollmError


class GroupScorer:
    """Logistic over the standardised group features (mean/sd learned with w).

    `features` are the columns it uses: GROUP_FEATURES, plus TEXT_FEATURES
    when it was fitted on draws whose texts were known (a bank built with
    --keep-text); a scorer fitted without them ignores texts wherever it runs."""

    def __init__(self, w=None, mean=None, std=None, features=GROUP_FEATURES):
        self.features = tuple(features)
        self._cols = np.array([ALL_GROUP_FEATURES.index(f) for f in self.features])
        self.w = None if w is None else np.asarray(w, float)
        n = 0 if self.w is None else len(self.w)
        self.mean = np.zeros(n) if mean is None else np.asarray(mean, float)
        self.std = np.ones(n) if std is None else np.asarray(std, float)

    def fit(self, samplers, ms, form: str | None, l2: float = 1.0) -> "GroupScorer":
        """samplers: bank samplers whose draws are all made; ms: draw counts to learn at."""
        texts = any(d.slips is not None for s in samplers for ds in s.draws for d in ds)
        self.features = GROUP_FEATURES + (TEXT_FEATURES if texts else ())
        self._cols = np.array([ALL_GROUP_FEATURES.index(f) for f in self.features])
        X, Y = [], []
        for s in samplers:
            for j in range(s.P):
                for m in ms:
                    keys, G = groups(s.draws[j][:m], form)
                    X.extend(G[:, self._cols])
                    Y.extend(s.correct(j, k) for k in keys)
        X = np.array(X).reshape(-1, len(self.features))
        if len(X) == 0:  # no answer anywhere: nothing to learn
            self.w, self.mean, self.std = np.zeros(X.shape[1]), np.zeros(X.shape[1]), np.ones(X.shape[1])
            return self
        sd = X.std(0)
        self.mean, self.std = X.mean(0), np.where(sd > 1e-4, sd, 1.0)  # a constant feature stays as it is
        self.mean[0], self.std[0] = 0.0, 1.0  # and so does the bias column
        self.w = fit_logistic((X - self.mean) / self.std, np.array(Y, float), l2)
        return self

    def scores(self, draws, form: str | None):
        keys, G = groups(draws, form)
        return keys, (sigmoid(((G[:, self._cols] - self.mean) / self.std) @ self.w) if len(keys) else np.zeros(0))

    def answer(self, draws, form: str | None):
        keys, sc = self.scores(draws, form)
        return keys[int(np.argmax(sc))] if len(keys) else None

    def to_dict(self) -> dict:
        r6 = lambda a: [round(float(x), 6) for x in a]  # noqa: E731
        return {"features": list(self.features), "w": r6(self.w), "mean": r6(self.mean), "std": r6(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "GroupScorer":
        feats = list(d.get("features", []))
        if feats not in (list(GROUP_FEATURES), list(ALL_GROUP_FEATURES)) or len(d.get("w", [])) != len(feats):
            raise CollmError("this policy's answer scorer was fitted on other features; calibrate it again")
        return cls(d["w"], d.get("mean"), d.get("std"), feats)

    @property
    def needs_text(self) -> bool:
        return TEXT_FEATURES[0] in self.features
