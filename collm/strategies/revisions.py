"""Sequential revisions (Snell et al. 2024, sec. 6): the model sees its
earlier attempts and revises them; several chains run in parallel.

A budget of N generations is split into C parallel chains of about L
attempts each (C * L = N; the remainder is spread over the chains). L comes
from `revisions` when given, else from the sequential-to-parallel ratio
R = L / C (Snell et al.'s axis): L = round(sqrt(N R)),
so R = 1 balances the two, R = N is one long chain, R = 1/N is best-of-N.

Attempt t + 1 of a chain is asked as a conversation: the question, the
chain's last `window` attempts as the assistant's turns, each followed by the
request to check and correct it. Snell et al. fine-tune a revision model; a
plain instruct model is prompted instead, so revisions help less here.

All chains of all prompts advance together: one backend call per round.
The final answer is chosen over every finished attempt of every chain by
`final`: "majority" (default), "weighted" or "best" (with the verifier).
Attempts cut at max_tokens never vote.
"""

from __future__ import annotations

import math

from collm.answers import extract_all
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.strategies.base import Strategy, per_prompt, register_strategy
from collm.strategies.beam import FINALS, choose_final
from collm.strategies.sampling import sample_grouped
from collm.types import Answer, Usage, sampling
from collm.verifiers import get_verifier

REVISE = ("Check the solution above step by step. If it has a mistake, correct it; then solve the problem "
          "again and put the final answer within \\boxed{}.")


def chain_lengths(n: int, revisions: int | None, seq_ratio: float) -> list[int]:
    """The number of attempts of each parallel chain; they sum to n."""
    if revisions is not None:
        length = max(1, min(int(revisions), n))
    else:
        length = max(1, min(n, round(math.sqrt(n * seq_ratio))))
    chains = max(1, n // length)
    out = [length] * chains
    for i in range(n - chains * length):  # the remainder, one more attempt each, round-robin
        out[i % chains] += 1
    return out


def revision_prompt(prompt: Prompt, attempts: list[str], window: int) -> Prompt:
    """The question, then the last `window` attempts each followed by REVISE."""
    history = [{"role": "user", "content": prompt.question}]
    shown = attempts[-window:]
    for k, a in enumerate(shown):
        history.append({"role": "assistant", "content": a.strip()})
        if k < len(shown) - 1:
            history.append({"role": "user", "content": REVISE})
    return Prompt(REVISE, prompt.system, list(prompt.history) + history, "", prompt.id)


@register_strategy
class Revisions(Strategy):
    name = "revisions"

    def __init__(self, revisions: int | None = None, seq_ratio: float = 1.0, window: int = 4,
                 final: str = "majority", verifier=None, mode: str = "outcome", aggregation: str | None = None,
                 verifier_options: dict | None = None):
        if revisions is not None and revisions < 1:
            raise CollmError(f"--revisions must be at least 1 (got {revisions})")
        if not seq_ratio > 0:
            raise CollmError(f"the sequential/parallel ratio must be > 0 (got {seq_ratio})")
        if window < 1:
            raise CollmError(f"the revision window must be at least 1 (got {window})")
        if final not in FINALS:
            raise CollmError(f"unknown final selection {final!r}; known: {', '.join(FINALS)}")
        self.revisions, self.seq_ratio, self.window, self.final = revisions, float(seq_ratio), int(window), final
        self.verifier = None
        if final != "majority" or verifier is not None:
            self.verifier = get_verifier(verifier, mode=mode, aggregation=aggregation, **(verifier_options or {}))

    def run(self, backend, prompts, n, task, params=None, *, verifier=None):
        prompts = self.prompts(prompts)
        ns = per_prompt(n, len(prompts))
        params = sampling(params).replace(stop=())
        seed = 0 if params.seed is None else int(params.seed)
        ver = get_verifier(verifier) if verifier is not None else self.verifier
        if self.final != "majority" and ver is None:
            ver = get_verifier(None)
        if ver is not None:
            ver.check()
        P = len(prompts)
        lengths = [chain_lengths(k, self.revisions, self.seq_ratio) for k in ns]
        usage = [Usage() for _ in range(P)]
        attempts = [[[] for _ in ls] for ls in lengths]  # [prompt][chain] -> completions

        # round 0: every chain's first attempt is a plain sample of the question
        gens = sample_grouped(backend, prompts, [len(ls) for ls in lengths], params)
        for j, g in enumerate(gens):
            usage[j] += g.usage
            for c, comp in enumerate(g.completions):
                attempts[j][c].append(comp)
        rounds = 1
        while True:
            todo = [(j, c) for j in range(P) for c, L in enumerate(lengths[j]) if len(attempts[j][c]) < L]
            if not todo:
                break
            asks = [revision_prompt(prompts[j], [a.text for a in attempts[j][c]], self.window) for j, c in todo]
            gens = backend.generate(asks, 1, params.replace(seed=seed + 7919 * rounds))
            for (j, c), g in zip(todo, gens):
                usage[j] += g.usage
                attempts[j][c].append(g.completions[0])
            rounds += 1

        out = []
        for j in range(P):
            comps = [a for chain in attempts[j] for a in chain]
            answers = extract_all(comps, task)
            scores = [0.0] * len(comps)
            if ver is not None:
                idx = [i for i, a in enumerate(answers) if a is not None]
                for i, s in zip(idx, ver([prompts[j]] * len(idx), [comps[i] for i in idx])):
                    scores[i] = s
            a, votes = choose_final(answers, scores, self.final)
            chains = [[x.answer for x in chain] for chain in attempts[j]]
            out.append(Answer(a, votes, ns[j], self.name, usage[j], comps,
                              {"chains": len(lengths[j]), "chain_length": max(lengths[j]), "chain_answers": chains}))
        return out
