"""A reward model behind HTTP: a vLLM pooling / classify server, or any
endpoint that answers with scores.

    v = RemoteRM("http://127.0.0.1:8000/pooling", model="Qwen/Qwen2.5-Math-PRM-7B")

One POST per batch of candidates: {"model": MODEL, "input": [TEXT, ...]},
where TEXT = template.format(question=..., answer=...) and the answer's steps
are joined with `step_sep` (a PRM may want its own step token there).

Responses understood (anything else is an error, never a guess):
    {"data": [{"probs": [...]}, ...]}        vLLM /classify: the last class's
                                             probability (the "correct" class)
    {"data": [{"data": X}, ...]}             vLLM /pooling: X a number, [p]
                                             or [p_wrong, p_right] for the
                                             whole answer, or one such row per
                                             step (a PRM's step rewards)
    {"data": [{"score": x}, ...]}            a score per input
    {"scores": [x, ...]}                     likewise (rows may be lists: steps)
with one item per input ("index" fields, when present, give the order).
A bare number is read as a logit and passed through a sigmoid
(raw="logit", the default) or used as is (raw="prob"); class probabilities
are used as they are. Every score must be a finite number.

Process scores: from a PRM's per-step rows when the server returns them (the
row count must equal the step count); from an outcome RM by scoring each
prefix of steps (one input per step: k steps cost k inputs).

Failure: an unreachable server, a timeout, an HTTP error, or a body of the
wrong shape raises CollmError naming the URL and what was wrong; strategies
call check() first, so a bad URL fails before any generation is spent. There
is no silent fallback. Only when the caller passes `fallback` (a Verifier, e.g.
self-certainty; the CLI's --verifier-fallback) are that verifier's scores
used instead, with a warning on stderr, and describe() reports how many
batches fell back.
"""

from __future__ import annotations

import math
import sys

from collm.errors import CollmError
from collm.verifiers.base import Verifier, step_texts


class RemoteError(CollmError):
    pass


def _num(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise RemoteError(f"{what} is not a finite number: {str(x)[:80]!r}")
    return float(x)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class RemoteRM(Verifier):
    name = "remote"

    def __init__(self, url: str, model: str | None = None, template: str = "{question}\n\n{answer}",
                 step_sep: str = "\n\n", raw: str = "logit", timeout: float = 30.0, batch_size: int = 32,
                 fallback: Verifier | None = None, headers: dict | None = None,
                 mode: str = "outcome", aggregation: str = "last"):
        super().__init__(mode, aggregation)
        if not url.startswith(("http://", "https://")):
            raise CollmError(f"verifier URL must start with http:// or https:// (got {url!r})")
        if raw not in ("logit", "prob"):
            raise CollmError(f"raw must be 'logit' or 'prob' (got {raw!r})")
        if "{answer}" not in template:
            raise CollmError("the verifier template must contain {answer}")
        self.url, self.model, self.template, self.step_sep, self.raw = url, model, template, step_sep, raw
        self.timeout, self.batch_size, self.fallback, self.headers = float(timeout), int(batch_size), fallback, headers or {}
        self.fallbacks = 0
        self._client = None
        self._checked = False

    # ---- transport ----
    def _post(self, texts: list[str]) -> list:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, headers=self.headers)
        body = {"input": texts}
        if self.model:
            body["model"] = self.model
        try:
            r = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise RemoteError(f"verifier {self.url} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise RemoteError(f"verifier {self.url} is unreachable ({type(e).__name__}: {e})") from None
        if r.status_code != 200:
            raise RemoteError(f"verifier {self.url} answered HTTP {r.status_code}: {r.text[:200]!r}")
        try:
            d = r.json()
        except ValueError:
            raise RemoteError(f"verifier {self.url} answered something that is not JSON: {r.text[:200]!r}") from None
        return self.parse(d, len(texts))

    def parse(self, d, count: int) -> list:
        """One item per input: a float (outcome) or a list of floats (steps)."""
        where = f"verifier {self.url}"
        if isinstance(d, dict) and isinstance(d.get("scores"), list):
            items = d["scores"]
            rows = [self._value(x, f"{where}: scores[{j}]", bare=True) for j, x in enumerate(items)]
        elif isinstance(d, dict) and isinstance(d.get("data"), list):
            items = d["data"]
            if all(isinstance(x, dict) and isinstance(x.get("index"), int) for x in items):
                items = sorted(items, key=lambda x: x["index"])
            rows = []
            for j, x in enumerate(items):
                w = f"{where}: data[{j}]"
                if not isinstance(x, dict):
                    raise RemoteError(f"{w} is not an object: {str(x)[:80]!r}")
                if "probs" in x:
                    p = x["probs"]
                    if not isinstance(p, list) or not p:
                        raise RemoteError(f"{w}.probs is not a non-empty list")
                    rows.append(_num(p[-1], f"{w}.probs[-1]"))
                elif "data" in x:
                    rows.append(self._value(x["data"], f"{w}.data", bare=True))
                elif "score" in x:
                    rows.append(self._value(x["score"], f"{w}.score", bare=True))
                else:
                    raise RemoteError(f"{w} has none of 'probs', 'data', 'score': keys {sorted(x)[:6]}")
        else:
            raise RemoteError(f"{where} answered JSON of an unknown shape (expected 'data' or 'scores'): {str(d)[:200]!r}")
        if len(rows) != count:
            raise RemoteError(f"{where} returned {len(rows)} scores for {count} inputs")
        return rows

    def _value(self, x, what: str, bare: bool):
        """A number, [p], [p_wrong, p_right], or a list of such rows (steps)."""
        if isinstance(x, list) and x and all(isinstance(r, list) for r in x):
            return [self._value(r, f"{what}[{k}]", bare) for k, r in enumerate(x)]
        if isinstance(x, list):
            if len(x) == 1:
                x = x[0]
            elif len(x) == 2:
                return _num(x[1], f"{what}[1]")  # class probabilities: the second is "correct"
            else:
                raise RemoteError(f"{what} is a list of {len(x)} numbers: expected a score, [p] or [p_wrong, p_right]")
        v = _num(x, what)
        return _sigmoid(v) if self.raw == "logit" else v

    def _batched(self, texts: list[str]) -> list:
        out = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(self._post(texts[i:i + self.batch_size]))
        return out

    def _text(self, prompt, steps: list[str]) -> str:
        answer = self.step_sep.join(s.strip() for s in steps)
        return self.template.format(question=prompt.question, answer=answer)

    def check(self) -> None:
        """One tiny request, once per verifier, before a strategy spends any
        generation: an unreachable URL or a server answering garbage fails
        here with its clear error (or warns, when a fallback was asked for)."""
        if self._checked:
            return
        try:
            self._post([self.template.format(question="What is 1 + 1?", answer="1 + 1 = 2. The answer is 2.")])
        except RemoteError as e:
            if self.fallback is None:
                raise
            self.fallbacks += 1
            print(f"warning: {e}; using {self.fallback.name} scores instead (--verifier-fallback)", file=sys.stderr)
        self._checked = True

    # ---- scoring ----
    def _guard(self, fn, prompts, completions, fallback_fn):
        try:
            return fn()
        except RemoteError as e:
            if self.fallback is None:
                raise
            self.fallbacks += 1
            if self.fallbacks == 1:  # warn once
                print(f"warning: {e}; using {self.fallback.name} scores instead (--verifier-fallback)", file=sys.stderr)
            return fallback_fn(prompts, completions)

    def score(self, prompts, completions):
        def go():
            rows = self._batched([self._text(p, step_texts(c) or [c.text]) for p, c in zip(prompts, completions)])
            return [r[-1] if isinstance(r, list) else r for r in rows]

        return self._guard(go, prompts, completions, self.fallback.score if self.fallback else None)

    def score_steps(self, prompts, completions):
        def go():
            steps = [step_texts(c) for c in completions]
            some = [j for j, s in enumerate(steps) if s]
            got = dict(zip(some, self._batched([self._text(prompts[j], steps[j]) for j in some])))
            out, prefix_jobs = [], []
            for j, s in enumerate(steps):
                r = got.get(j)
                if not s:
                    out.append([])
                elif isinstance(r, list):
                    if len(r) != len(s):
                        raise RemoteError(f"verifier {self.url} returned {len(r)} step scores for {len(s)} steps")
                    out.append(r)
                else:  # an outcome RM: score every prefix of steps
                    out.append([None] * (len(s) - 1) + [r])
                    prefix_jobs += [(j, k) for k in range(len(s) - 1)]
            if prefix_jobs:
                more = self._batched([self._text(prompts[j], steps[j][:k + 1]) for j, k in prefix_jobs])
                for (j, k), r in zip(prefix_jobs, more):
                    out[j][k] = r[-1] if isinstance(r, list) else r
            return out

        return self._guard(go, prompts, completions, self.fallback.score_steps if self.fallback else None)

    def describe(self) -> dict:
        d = {**super().describe(), "url": self.url, "model": self.model}
        if self.fallback is not None:
            d["fallback"] = self.fallback.name
            d["fallback_batches"] = self.fallbacks
        return d

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
