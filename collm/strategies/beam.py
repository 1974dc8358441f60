"""Beam search guided by a process verifier (Snell et al. 2024, sec. 5.2).

With a budget of N generations and beam width M, for every prompt at once:
sample N first steps; score each partial answer with the verifier; keep the
N/M best; give each M continuations (N generations again); repeat, step by
step, until the answers end or `max_steps` rounds have run (the last round
lets each path write to its end). Answers that end leave the frontier and
take their slot with them, so the frontier narrows as answers finish. The
final answer is chosen among the finished answers by `final`: "weighted"
(sum of verifier scores per distinct answer, the default, as Snell et al.),
"best" (the single top score) or "majority".

The same tree search runs DVTS (independent subtrees, dvts.py) and lookahead
search (k-step greedy rollouts to score a step, lookahead.py). All of it is
batched: one backend call per round over every prompt and beam.

    get_strategy("beam", beam_width=4, verifier="self-certainty").run(backend, prompts, 16, task, params)
"""

from __future__ import annotations

from collm.errors import CollmError
from collm.strategies.base import Strategy, per_prompt, register_strategy
from collm.strategies.steps import STEP_STOP, Path, expand, score_paths
from collm.types import Answer, Usage, sampling
from collm.verifiers import get_verifier
from collm.vote import best_score, majority, weighted

FINALS = ("weighted", "best", "majority")


def choose_final(answers, scores, how: str):
    """(answer, votes) among finished candidates: weighted, best or majority."""
    if how == "weighted":
        return weighted(answers, scores)
    if how == "best":
        a = best_score(answers, scores)
        votes = {}
        for x, s in zip(answers, scores):
            if x is not None:
                votes[x] = max(votes.get(x, float("-inf")), float(s))
        return a, votes
    a, votes = majority(answers)
    return a, {k: float(v) for k, v in votes.items()}


@register_strategy
class BeamSearch(Strategy):
    name = "beam"

    def __init__(self, beam_width: int = 4, lookahead: int = 0, verifier=None, final: str = "weighted",
                 max_steps: int = 40, step_tokens: int = 256, aggregation: str | None = None,
                 mode: str = "process", subtrees: bool = False, verifier_options: dict | None = None):
        if beam_width < 1:
            raise CollmError(f"beam width must be at least 1 (got {beam_width})")
        if lookahead < 0:
            raise CollmError(f"lookahead must be >= 0 (got {lookahead})")
        if max_steps < 1 or step_tokens < 1:
            raise CollmError("max_steps and step_tokens must be at least 1")
        if final not in FINALS:
            raise CollmError(f"unknown final selection {final!r}; known: {', '.join(FINALS)}")
        self.beam_width, self.lookahead, self.final = int(beam_width), int(lookahead), final
        self.max_steps, self.step_tokens, self.subtrees = int(max_steps), int(step_tokens), subtrees
        self.verifier = get_verifier(verifier, mode=mode, aggregation=aggregation, **(verifier_options or {}))

    # ---- the shape of the tree for a budget of n ----
    def layout(self, n: int) -> tuple[int, int, int, int]:
        """(groups, first, keep, width): subtrees per prompt, first-round
        samples per subtree, paths each subtree keeps, children per path."""
        m = min(self.beam_width, n)
        if self.subtrees:  # DVTS: n // m independent subtrees, each greedy on its best path
            return max(1, n // m), m, 1, m
        return 1, n, max(1, n // m), m

    def run(self, backend, prompts, n, task, params=None, *, verifier=None):
        prompts = self.prompts(prompts)
        ns = per_prompt(n, len(prompts))
        params = sampling(params)
        seed = 0 if params.seed is None else int(params.seed)
        ver = self.verifier if verifier is None else get_verifier(verifier)
        ver.check()  # a remote verifier that cannot answer fails before any generation
        P = len(prompts)
        usage = [Usage() for _ in range(P)]
        done: list[list[Path]] = [[] for _ in range(P)]
        dropped = [0] * P
        counter, rollout_counter = [0] * P, [0] * P
        layouts = [self.layout(k) for k in ns]
        slots = {(j, g): layouts[j][2] for j in range(P) for g in range(layouts[j][0])}

        def at(s):  # the sampling settings of a round seeded s
            return params.replace(seed=s)

        # round 0: every subtree of a prompt starts from the same root: one call per prompt
        roots = [Path(p, j) for j, p in enumerate(prompts)]
        firsts = [layouts[j][0] * layouts[j][1] for j in range(P)]
        last = self.max_steps == 1
        kids = expand(backend, roots, firsts, usage, at(seed), step_tokens=self.step_tokens,
                      stop=None if last else STEP_STOP, counter=counter)
        children = []
        for j, ks in enumerate(kids):
            g_count, first = layouts[j][0], layouts[j][1]
            for i, c in enumerate(ks):
                c.group = min(i // first, g_count - 1)
                children.append(c)

        rounds = 1
        while True:
            self._score(backend, ver, children, usage, at(seed + 7919 * rounds), rollout_counter)
            parents = []
            by_group: dict[tuple[int, int], list[Path]] = {}
            for c in children:
                by_group.setdefault((c.owner, c.group), []).append(c)
            for key, cs in by_group.items():
                for c in cs:
                    if c.state == "finished":
                        done[c.owner].append(c)
                    elif c.state == "unfinished":
                        dropped[c.owner] += 1
                live = sorted((c for c in cs if c.state != "unfinished"), key=lambda c: -c.score)
                top = live[:slots[key]]
                slots[key] -= sum(c.state == "finished" for c in top)
                parents += [c for c in top if c.state == "active"]
            if not parents:
                break
            last = rounds >= self.max_steps - 1
            widths = [layouts[p.owner][3] for p in parents]
            kids = expand(backend, parents, widths, usage, at(seed + 7919 * rounds), step_tokens=self.step_tokens,
                          stop=None if last else STEP_STOP, counter=counter)
            children = [c for ks in kids for c in ks]
            if last:  # the last round wrote every path to its end: nothing is left active
                for c in children:
                    if c.state == "active":
                        c.state = "unfinished"
            rounds += 1

        out = []
        for j in range(P):
            paths = done[j]
            comps = [p.completion() for p in paths]
            answers = [task.extract(c.text) for c in comps]
            for c, a in zip(comps, answers):
                c.answer = a
            a, votes = choose_final(answers, [p.score for p in paths], self.final)
            extra = {"rounds": rounds, "finished": len(paths), "unfinished": dropped[j],
                     "step_generations": counter[j], "verifier": ver.describe()}
            if self.lookahead:
                extra["rollout_generations"] = rollout_counter[j]
            # n: the generation budget spent, N beams x (1 + k) with lookahead k (Snell et al.'s accounting)
            out.append(Answer(a, votes, ns[j] * (1 + self.lookahead), self.name, usage[j], comps, extra))
        return out

    def _score(self, backend, ver, children, usage, params, rollout_counter):
        """Score this round's children; with lookahead k, an active child is
        scored by where a greedy rollout of up to k more steps leads."""
        if not self.lookahead:
            score_paths(ver, [c for c in children if c.state != "unfinished"])  # the cut ones are dropped
            return
        finals = [c for c in children if c.state == "finished"]
        score_paths(ver, finals)
        active = [c for c in children if c.state == "active"]
        heads = list(active)
        for k in range(self.lookahead):
            going = [h for h in heads if h.state == "active"]
            if not going:
                break
            kids = expand(backend, going, [1] * len(going), usage, params.replace(seed=params.seed + k).as_greedy(),
                          step_tokens=self.step_tokens, stop=STEP_STOP, counter=rollout_counter)
            nxt = {id(h): ks[0] for h, ks in zip(going, kids)}
            heads = [nxt.get(id(h), h) for h in heads]
        ends = [h if h.state != "unfinished" else a for h, a in zip(heads, active)]
        score_paths(ver, ends)
        for a, e in zip(active, ends):
            a.score = e.score
