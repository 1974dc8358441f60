"""Replaying a bank: a policy's requests served from the bank's graded samples."""

from __future__ import annotations

import numpy as np

from collm.bank.draws import orders
from collm.budget import Budget
from collm.errors import CollmError
from collm.flops import inference_flops
from collm.samplers.base import Draw, Sampler


class BankSampler(Sampler):
    """Replays a bank: prompt j's samples are served in the seeded order
    draws.orders(rows, K, seed); the greedy pass is the bank's greedy decode."""

    def __init__(self, arrays: dict, rows, seed: int, params: int, max_tokens: int, budget: Budget | None = None,
                 q_entropy=None, q_nll=None):
        super().__init__(arrays["prompt_tokens"], arrays["q_tokens"], params, max_tokens, budget)
        self.A = arrays
        K = arrays["ans"].shape[1]
        self.order = orders(rows, K, seed)
        self.served = np.zeros(self.P, np.int64)
        self._q_entropy, self._q_nll = q_entropy, q_nll
        ans, ok = arrays["ans"], arrays["ok"]
        C = max(int(ans.max()), int(arrays["greedy_ans"].max())) + 1
        self.code_ok = np.zeros((self.P, max(C, 1)), bool)
        r, c = np.nonzero(ans >= 0)
        self.code_ok[r, ans[r, c]] = ok[r, c]
        g = arrays["greedy_ans"]
        m = g >= 0
        self.code_ok[np.nonzero(m)[0], g[m]] |= arrays["greedy_ok"][m]

    @property
    def K(self) -> int:
        return self.A["ans"].shape[1]

    def _generate(self, idx, ks, greedy):
        A, out = self.A, []
        for j, k in zip(idx, ks):
            if greedy:
                n = int(A["greedy_n"][j])
                a = int(A["greedy_ans"][j])
                lp = float(A["greedy_lp"][j]) if "greedy_lp" in A else 0.0
                gs = int(A["greedy_slips"][j]) if "greedy_slips" in A else -1
                out.append([self._draw(n, a, lp, True, j, gs)])
                continue
            s = int(self.served[j])
            if s + k > self.K:
                raise CollmError(f"asked for {s + k} samples of a problem; the bank holds {self.K}")
            cols = self.order[j, s:s + k]
            self.served[j] = s + k
            sl = A.get("slips")
            out.append([self._draw(int(A["ntok"][j, c]), int(A["ans"][j, c]), float(A["lp"][j, c]), False, j,
                                   int(sl[j, c]) if sl is not None else -1) for c in cols])
        return out

    def _draw(self, n: int, code: int, lp: float, greedy: bool, j: int, slips: int) -> Draw:
        """One bank sample as a run capped at self.max_tokens would have seen
        it. Below the cap it is the same sample (the cap only stops a
        generation). A sample the bank holds cut at this very cap is cut here
        too. A longer one (a replay capped below the bank's own max_tokens)
        stops at the cap and pays it; its text there is unknown, so it has no
        answer (a cut draw never votes anyway) and its log-prob is prorated.
        code and slips are the bank's integers, -1 for none."""
        if n > self.max_tokens:
            return Draw(None, self.max_tokens, lp * self.max_tokens / n, True, greedy, None, None)
        return Draw(code if code >= 0 else None, n, lp, n >= self.max_tokens, greedy, self._value(j, code),
                    slips if slips >= 0 else None)

    def _value(self, j: int, code: int) -> float | None:
        cv = self.A.get("code_value")
        if cv is None or code < 0 or code >= cv.shape[1] or np.isnan(cv[j, code]):
            return None
        return float(cv[j, code])

    def available(self) -> np.ndarray:
        """Samples each prompt still has in the bank."""
        return self.K - self.served

    def correct(self, j: int, key) -> bool:
        return key is not None and bool(self.code_ok[j, key])

    def signal(self, name, k=32):
        if name in ("prefix_entropy", "prompt_nll"):
            src = self._q_entropy if name == "prefix_entropy" else self._q_nll
            if src is None:
                raise CollmError(f"this policy needs {name.replace('_', ' ')}, and the bank holds no prompt-side "
                                 "signals (its model's server gives no prompt log-probs: header signals.prompt is "
                                 "false); use a policy that needs only the draws: early-stop, marginal or uniform")
            kk = k if name == "prefix_entropy" else 10**9
            vals = np.array([float(np.mean(x[:kk])) if len(x) else 0.0 for x in src])
            n = np.array([min(len(x), kk) for x in src])
            return vals, inference_flops(self.params, n).astype(float)
        return super().signal(name, k)
