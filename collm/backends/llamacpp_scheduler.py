"""Continuous batching over one llama.cpp context.

Every generate and score_prompt call of the llama.cpp engine, from any
thread, becomes a job on one queue; one engine thread runs every job's
work together, step by step:

  - each step is one llama_decode over one token of every live sample of
    every job, plus a chunk of the prompts being prefilled: a call that
    arrives while others run joins at the next step (a server's concurrent
    requests, or the per-prompt rounds of an adaptive policy, share one
    batch), and a sample that ends leaves at once, its place going to the
    next one waiting;
  - a prompt is prefilled once into a root sequence that stays in the KV
    cache after its call (the least recently used root goes when the root
    sequences run out): a policy's later rounds, the greedy pass after the
    difficulty probe, and the next request with the same prompt start from it
    at no cost; a sample starts as a copy of its root's cells and from the
    root's last logits;
  - a prefill runs in a llama_decode call of its own (every other call while
    samples decode);
  - samples with different settings (a greedy pass beside sampled rows)
    decode in the same batch, each picked by its own settings and stream.

Every sequence has cells of its own in the KV cache (llama.cpp's per-sequence
streams, not one unified cache): a sequence's numbers then do not depend on
what else the cache holds, so a seed gives the same samples whatever else is
being decoded, a resumed bank build draws what an uninterrupted one would,
and a server's answer does not depend on its load. (In a unified cache they
do: llama.cpp quantizes activations to 8 bits, so the rounding that a cell's
place among others' changes can flip a token.) The price is memory: every
sequence holds a whole sample's context (n_ctx cells).

A job whose cancel event is set has its samples cut where they stand and its
caller gets Cancelled (a CollmError) with the tokens it had decoded and
prefilled, so a caller that cuts samples it no longer needs can count what
they cost. Usage counts what was computed: a
prompt's prefill counts for the call that caused it, not again when its
root is reused.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from collm.backends.base import find_stop
from collm.backends.picking import pick
from collm.errors import CollmError
from collm.types import SamplingParams

SCORE_CHUNK = 128  # prompt positions per decode when every position's logits are wanted


@dataclass(eq=False)
class Job:
    """One generate (kind "generate") or score_prompt ("score") call."""

    kind: str
    prompts: list[list[int]]
    n: int = 1
    params: SamplingParams | None = None
    rngs: list[list] = field(default_factory=list)  # [prompt][sample] random streams (None when greedy)
    cancel: threading.Event | None = None
    done: threading.Event = field(default_factory=threading.Event)
    out: list = field(default_factory=list)  # generate: [prompt][sample] Completion; score: [prompt] (ent, lps)
    prefilled: list[int] = field(default_factory=list)  # prompt tokens computed for this job, per prompt
    left: int = 0  # samples (or scores) still to finish
    error: BaseException | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@dataclass(eq=False)
class Root:
    """A prompt's cells in the cache, and its last logits once prefilled."""

    ids: tuple
    seq: int
    owner: tuple  # (job, prompt index) whose usage its prefill counts in
    done: int = 0  # tokens prefilled so far
    logits: np.ndarray | None = None  # the last position's logits (ready when set)
    score: tuple | None = None  # (entropy, logprobs) per position, once a score job asked for them
    want_score: bool = False
    partial: tuple = ((None,), (None,))  # the score while it is being computed
    children: int = 0  # live samples copied from it
    waiting: list = field(default_factory=list)  # rows and (score job, prompt index) waiting for it
    last_used: float = 0.0

    @property
    def ready(self) -> bool:
        return self.logits is not None and not self.want_score


@dataclass(eq=False)
class Row:
    """One sample being decoded in its own sequence."""

    job: Job
    j: int  # prompt index in the job
    r: int  # sample index in the job
    rng: object
    root: Root | None = None
    seq: int = -1
    toks: list = field(default_factory=list)
    lps: list = field(default_factory=list)
    logits: np.ndarray | None = None  # what its next token is picked from


class Cancelled(CollmError):
    """A job cut by its cancel event: decoded = tokens its samples had made
    (finished ones and those cut), prefilled = prompt tokens computed for it."""

    def __init__(self, decoded: int = 0, prefilled: int = 0):
        super().__init__("cancelled")
        self.decoded, self.prefilled = decoded, prefilled


class NoRoom(Exception):
    """No root sequence free right now."""


class Scheduler:
    """rows: sequences for samples; roots: sequences for prompts kept in the cache."""

    def __init__(self, engine, rows: int, roots: int):
        self.e = engine
        self.max_rows, self.max_roots = rows, roots
        self.cv = threading.Condition()
        self.queue: deque[Job] = deque()
        self.stopping = False
        self.steps = 0  # llama_decode calls
        self.most_jobs = 0  # the most calls whose samples shared one decode step
        self._reset()
        self.thread = threading.Thread(target=self._loop, name="collm-llamacpp", daemon=True)
        self.thread.start()

    def _reset(self) -> None:
        self.free_rows = list(range(self.max_rows))[::-1]  # sequence ids of rows
        self.free_roots = list(range(self.max_rows, self.max_rows + self.max_roots))[::-1]
        self.pending: deque[Row] = deque()  # rows without a sequence yet
        self.pending_scores: deque[tuple] = deque()  # (score job, prompt index) without a root yet
        self.rows: list[Row] = []  # rows holding a sequence
        self.roots: dict[tuple, Root] = {}

    # ---- the callers' side ----
    def run(self, job: Job) -> Job:
        with self.cv:
            if self.stopping:
                raise CollmError("the llama.cpp engine is closed")
            self.queue.append(job)
            self.cv.notify_all()
        while not job.done.wait(0.1):
            if not self.thread.is_alive():
                raise CollmError("the llama.cpp engine stopped")
        if job.error is not None:
            raise job.error
        return job

    def close(self) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify_all()
        self.thread.join(timeout=30)

    # ---- the engine thread ----
    def _busy(self) -> bool:
        return bool(self.rows or self.pending or self.pending_scores or any(not r.ready and (r.waiting or r.want_score)
                                                     for r in self.roots.values()))

    def _loop(self) -> None:
        while True:
            with self.cv:
                while not self.stopping and not self.queue and not self._busy():
                    self.cv.wait()
                if self.stopping:
                    break
                new = list(self.queue)
                self.queue.clear()
            try:
                for job in new:
                    self._accept(job)
                self._step()
            except BaseException as e:  # a broken step fails every job in it; the cache starts afresh
                self._fail_all(e if isinstance(e, CollmError) else CollmError(f"llama.cpp engine error: {e}"))
        self._fail_all(CollmError("the llama.cpp engine is closed"))

    def _jobs(self) -> list[Job]:
        jobs = {id(r.job): r.job for r in self.rows + list(self.pending)}
        jobs.update({id(w[0]): w[0] for w in self.pending_scores})
        for root in self.roots.values():
            for w in root.waiting:
                job = w.job if isinstance(w, Row) else w[0]
                jobs[id(job)] = job
        return list(jobs.values())

    def _fail_all(self, error: BaseException) -> None:
        for job in self._jobs():
            job.finish(error)
        self.e._clear_memory()
        self._reset()

    def _accept(self, job: Job) -> None:
        job.prefilled = [0] * len(job.prompts)
        if job.kind == "clear":  # evict every idle root
            for root in [r for r in self.roots.values() if r.children == 0 and not r.waiting and r.ready]:
                self._evict(root)
            job.finish()
            return
        if job.kind == "score":
            job.out, job.left = [None] * len(job.prompts), len(job.prompts)
            self.pending_scores.extend((job, j) for j in range(len(job.prompts)))
            return
        rows = 1 if job.params.greedy else job.n
        job.out, job.left = [[None] * rows for _ in job.prompts], len(job.prompts) * rows
        for j in range(len(job.prompts)):
            for r in range(rows):
                self.pending.append(Row(job, j, r, job.rngs[j][r]))

    # ---- roots: prompts in the cache ----
    def _root(self, ids: tuple, owner: tuple, want_score: bool = False) -> Root:
        """The root of a prompt, made (and queued for prefill) when missing."""
        root = self.roots.get(ids)
        if root is None:
            self._make_room()
            root = Root(ids, self.free_roots.pop(), owner)
            self.roots[ids] = root
        if want_score and root.score is None and not root.want_score:
            root.want_score, root.owner = True, owner
            if root.done:  # prefilled before without every position's logits: prefill it again
                self.e._seq_rm(root.seq, 0)
                root.done, root.logits = 0, None
        root.last_used = time.monotonic()
        return root

    def _make_room(self) -> None:
        """A free root sequence: the least recently used idle root goes if need be; NoRoom if none is idle."""
        if self.free_roots:
            return
        idle = [r for r in self.roots.values() if r.children == 0 and not r.waiting and r.ready]
        if not idle:
            raise NoRoom()
        self._evict(min(idle, key=lambda r: r.last_used))

    def _evict(self, root: Root) -> None:
        self.e._seq_rm(root.seq, 0)
        self.free_roots.append(root.seq)
        del self.roots[root.ids]

    # ---- one step ----
    def _admit(self) -> None:
        """Give waiting prompts to score a root, and waiting rows a sequence, in arrival order."""
        while self.pending_scores:
            job, j = self.pending_scores[0]
            if job.done.is_set():
                self.pending_scores.popleft()
                continue
            try:
                root = self._root(tuple(job.prompts[j]), (job, j), want_score=True)
            except NoRoom:
                break
            self.pending_scores.popleft()
            if root.ready:
                self._scored(job, j, root)
            else:
                root.waiting.append((job, j))
        while self.pending and self.free_rows:
            row = self.pending[0]
            if row.job.done.is_set():
                self.pending.popleft()
                continue
            try:
                if row.root is None:
                    row.root = self._root(tuple(row.job.prompts[row.j]), (row.job, row.j))
            except NoRoom:  # every root sequence holds a prompt still in use: wait for one
                return
            self.pending.popleft()
            row.seq = self.free_rows.pop()
            row.root.children += 1
            self.rows.append(row)
            if row.root.ready:
                self._start(row)
            else:
                row.root.waiting.append(row)

    def _start(self, row: Row) -> None:
        """A row's sequence takes a copy of its root's cells, and its first token comes from the root's logits."""
        root = row.root
        self.e._seq_cp(root.seq, row.seq, -1, -1)  # the whole sequence: what llama.cpp copies between streams
        row.logits = root.logits
        root.last_used = time.monotonic()

    def _cut_cancelled(self) -> None:
        for job in [j for j in self._jobs() if j.cancelled]:
            decoded = sum(c.tokens for cs in job.out for c in cs if c is not None) if job.kind == "generate" else 0
            decoded += sum(len(r.toks) for r in self.rows if r.job is job)
            for row in [r for r in self.rows if r.job is job]:
                self._release(row)
            self.pending = deque(r for r in self.pending if r.job is not job)
            self.pending_scores = deque(w for w in self.pending_scores if w[0] is not job)
            for root in self.roots.values():
                root.waiting = [w for w in root.waiting if (w.job if isinstance(w, Row) else w[0]) is not job]
            job.finish(Cancelled(decoded, sum(job.prefilled)))

    def _step(self) -> None:
        self._cut_cancelled()
        self._admit()
        tokens, pos, seqs, want = [], [], [], []
        # their last token is to be decoded, in sequence order (runs of consecutive ids: one ubatch)
        decoding = sorted((r for r in self.rows if r.logits is None and r.toks), key=lambda r: r.seq)
        for r in decoding:
            tokens.append(r.toks[-1])
            pos.append(len(r.root.ids) + len(r.toks) - 1)
            seqs.append(r.seq)
            want.append(True)
        chunks = []
        # A prompt's prefill runs in a call of its own: llama.cpp's numbers for a
        # prompt then do not depend on what else is being decoded (mixing them
        # moves log-probs by ~0.02 nats), and the compute is the same.
        todo = next((r for r in self.roots.values() if not r.ready and (r.waiting or r.want_score)), None)
        if todo is not None and (not decoding or self.steps % 2):  # while samples decode: every other call
            tokens, pos, seqs, want, decoding = [], [], [], [], []
            end = min(len(todo.ids), todo.done + (SCORE_CHUNK if todo.want_score else self.e.n_batch))
            for i in range(todo.done, end):
                tokens.append(todo.ids[i])
                pos.append(i)
                seqs.append(todo.seq)
                want.append(todo.want_score or i == len(todo.ids) - 1)
            chunks.append((todo, todo.done, end))
        if tokens:
            self.e._decode(tokens, pos, seqs, want)
            self.steps += 1
            self.most_jobs = max(self.most_jobs, len({id(r.job) for r in decoding}))
            out = self.e._rows(sum(want))
            k = len(decoding)
            for r, logits in zip(decoding, out):
                r.logits = logits
            for root, start, end in chunks:
                n_out = (end - start) if root.want_score else int(end == len(root.ids))
                self._prefilled(root, start, end, out[k:k + n_out])
                k += n_out
        self._sample()

    def _prefilled(self, root: Root, start: int, end: int, block: np.ndarray) -> None:
        job, j = root.owner
        if not job.done.is_set():
            job.prefilled[j] += end - start
        if root.want_score:
            nxt = list(root.ids[start + 1:end + 1])  # the token each position predicts
            if nxt:
                logp = _log_softmax(block[:len(nxt)])
                ent = np.maximum(-(np.exp(logp) * logp).sum(1), 0.0)
                root.partial = (root.partial[0] + tuple(ent.tolist()),
                                root.partial[1] + tuple(logp[np.arange(len(nxt)), nxt].tolist()))
        root.done = end
        if end < len(root.ids):
            return
        root.logits = np.array(block[-1], copy=True)
        if root.want_score:
            root.score, root.want_score, root.partial = (list(root.partial[0]), list(root.partial[1])), False, ((None,), (None,))
        waiting, root.waiting = root.waiting, []
        for w in waiting:
            if isinstance(w, Row):
                self._start(w)
            else:
                self._scored(w[0], w[1], root)

    def _scored(self, job: Job, j: int, root: Root) -> None:
        job.out[j] = root.score
        job.left -= 1
        if job.left == 0:
            job.finish()

    def _sample(self) -> None:
        ready = [r for r in self.rows if r.logits is not None]
        groups: dict = {}
        for r in ready:
            p = r.job.params
            groups.setdefault((p.temperature, p.top_p, p.top_k), []).append(r)
        for (t, top_p, top_k), rows in groups.items():
            picked, lp = pick(_stacked([r.logits for r in rows]), t, top_p, [r.rng for r in rows], top_k)
            for r, tok, lpv in zip(rows, picked, lp):
                r.toks.append(int(tok))
                r.lps.append(float(lpv))
                r.logits = None
        for r in ready:
            p = r.job.params
            if r.toks[-1] in self.e.eos_ids:
                self._end(r, "stop")
            elif p.stop and find_stop(self.e.detokenize(r.toks[-24:]), p.stop)[0] >= 0:
                self._end(r, "stop")
            elif len(r.toks) >= p.max_tokens:
                self._end(r, "length")

    def _end(self, row: Row, finish: str) -> None:
        job = row.job
        job.out[row.j][row.r] = self.e._completion(row.toks, row.lps, finish, job.params.stop)
        self._release(row)
        job.left -= 1
        if job.left == 0:
            job.finish()

    def _release(self, row: Row) -> None:
        self.rows.remove(row)
        self.e._seq_rm(row.seq, 0)
        hole = row.seq
        # Live rows keep consecutive sequence ids: llama.cpp splits a batch over
        # per-sequence streams into one ubatch per run of consecutive ids, each a
        # pass over the weights (7 rows with one gap: 132 ms a step, not 103). So
        # the highest row moves into the gap (a copy of its cells). bench/seq_gaps.py
        top = max(self.rows, key=lambda r: r.seq, default=None)
        if top is not None and top.seq > hole:
            self.e._seq_cp(top.seq, hole, -1, -1)
            self.e._seq_rm(top.seq, 0)
            top.seq, hole = hole, top.seq
        self.free_rows.append(hole)
        row.root.children -= 1
        row.root.last_used = time.monotonic()
        if row in row.root.waiting:
            row.root.waiting.remove(row)


def _stacked(rows: list[np.ndarray]) -> np.ndarray:
    """The rows as one array: a view when they are consecutive rows of one array
    (the last decode's logits, the common case), else a copy (vocab x 4 bytes a row)."""
    base = rows[0].base
    if base is not None and rows[0].flags.c_contiguous and all(r.base is base for r in rows):
        step = rows[0].nbytes
        start = rows[0].__array_interface__["data"][0]
        if all(r.__array_interface__["data"][0] == start + i * step for i, r in enumerate(rows)):
            return np.lib.stride_tricks.as_strided(rows[0], shape=(len(rows), rows[0].size),
                                                   strides=(step, rows[0].itemsize), writeable=False)
    return np.stack(rows)


def _common_prefix(a, b) -> int:
    m = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:m], dtype=np.int64) != np.asarray(b[:m], dtype=np.int64))
    return int(diff[0]) if len(diff) else m


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
