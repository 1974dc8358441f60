"""Why live rows keep consecutive sequence ids: the cost of one llama_decode
step of 7 rows over per-sequence KV streams, by how the rows' ids are laid
out (median of 12 steps, ms). Run on 2026-12-04 on a 2-core Xeon, Qwen2.5-Coder-0.5B:
0..6 102.6, one gap 131.8, two gaps 171.7, 0..7 103.5, spread 292.6.

    python bench/seq_gaps.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine as B  # noqa: E402

from collm.backends.llamacpp_engine import LlamaCppEngine  # noqa: E402
from collm.prompts import Prompt  # noqa: E402

e = LlamaCppEngine("qwen2.5-coder-0.5b", max_rows=32)
e._sched.close()  # drive the context directly
ids = e.encode(Prompt(B.PROMPT))[0]


def run(seqs, steps=12):
    e._clear_memory()
    e._decode(ids, range(len(ids)), [0] * len(ids), [False] * (len(ids) - 1) + [True])
    for s in seqs:
        if s:
            e._seq_cp(0, s, -1, -1)
    if 0 not in seqs:
        e._seq_rm(0, 0)
    toks = [int(e._rows(1)[0].argmax())] * len(seqs)
    ts = []
    for step in range(steps):
        t = time.perf_counter()
        e._decode(toks, [len(ids) + step] * len(seqs), list(seqs), True)
        ts.append(time.perf_counter() - t)
        toks = e._rows(len(seqs)).argmax(1).tolist()
    ts.sort()
    return round(1000 * ts[len(ts) // 2], 1)


LAYOUTS = (("0..6", [0, 1, 2, 3, 4, 5, 6]), ("one gap", [0, 1, 3, 4, 5, 6, 7]), ("two gaps", [0, 2, 4, 5, 6, 7, 8]),
           ("0..7", list(range(8))), ("spread", [0, 4, 8, 12, 16, 20, 24]))
for name, seqs in LAYOUTS:
    print(name, run(seqs), "ms")
