"""A bank build over an OpenAI-compatible upstream: many problems in flight
at once, each line written (and fsync'ed) the moment its problem is done.

The upstream does the batching (vLLM's continuous batching, SGLang's): what
collm must do is keep enough requests in flight. The backend caps them at
--concurrency (RemoteBackend's max_in_flight); up to that many problems run
at once, each in its own thread: prompt scoring (where the upstream gives
prompt log-probs), the K samples (one request with n = K where the upstream
honours n, else K requests with n = 1), the greedy decode. The first failure
stops the build: the problems under way are cancelled (their requests too)
and left for the resume (one that finishes all the same is written); every
finished line stays in the file.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from collm.prompts import Prompt


def build_in_flight(backend, todo, header, params, write, progress, *, concurrency: int, line,
                    scored: dict | None = None) -> int:
    """Sample every problem of `todo`, up to `concurrency` at once; write(line)
    is called (under a lock) as each finishes. Returns the problems written.
    scored: problem id -> its PromptScore where already made (the build's
    prompt-signals probe), so that prompt is not scored twice."""
    scored = dict(scored or {})
    k = header["sampling"]["k"]
    system = header["prompt"]["system"]
    signals = header.get("signals", {}).get("prompt", True)
    cancel = threading.Event()
    lock = threading.Lock()
    kw = {"cancel": cancel} if getattr(backend, "supports_cancel", False) else {}
    written = 0

    def one(p):
        nonlocal written
        prompt = Prompt(p.question, system=system, id=p.id)
        score = (scored.pop(p.id, None) or backend.score_prompt([prompt], **kw)[0]) if signals else None
        gen = backend.generate([prompt], k, params, **kw)[0]
        greedy = backend.generate([prompt], 1, params.as_greedy(), **kw)[0]
        d = line(p, score, gen, greedy, prompt)
        with lock:  # a problem that finishes while the build stops is kept too
            write(d)
            written += 1
            progress.add(k + 1, sum(c.tokens for c in gen.completions) + greedy.completions[0].tokens)

    queue = list(todo)
    ex = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo))), thread_name_prefix="collm-bank")
    running: set = set()
    try:
        while queue or running:
            while queue and len(running) < concurrency:
                running.add(ex.submit(one, queue.pop(0)))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                fut.result()  # the first failure stops the build
    except BaseException:
        cancel.set()  # the problems under way stop, their requests cancelled
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return written
