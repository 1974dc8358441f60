"""One random stream per sample, so that a seed fixes every sample however
calls and batches are cut.

Sample r of a prompt is drawn from the numpy stream keyed by (seed, first + r,
a hash of the prompt's token ids), where `first` is the index of the prompt's
first new sample in this call (0 unless the caller says otherwise). So:

- the same prompt, seed and sample index give the same sample in any batch,
  alone or beside other prompts, in one call of n or in n calls of one;
- a bank build resumed after a crash draws exactly what an uninterrupted
  build would have drawn;
- a policy that asks for a prompt's samples a few at a time (passing how many
  it already has as `first`) gets the very samples uniform best-of-N draws
  for that prompt in one call: live comparisons are paired, as on a bank.

Each step of a sample takes one uniform number from its stream (inverse-CDF
sampling), in both embedded engines. Seed None draws fresh entropy.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

MASK = (1 << 64) - 1


def prompt_key(ids: Sequence[int]) -> int:
    """A stable 32-bit hash of a prompt's token ids."""
    return zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes())


def streams(seed: int | None, ids: Sequence[int], first: int, count: int) -> list[np.random.Generator]:
    """The random streams of samples first .. first + count - 1 of the prompt `ids`."""
    if seed is None:
        return [np.random.default_rng() for _ in range(count)]
    key = prompt_key(ids)
    return [np.random.default_rng([int(seed) & MASK, int(first) + r, key]) for r in range(count)]


def firsts(offsets: Sequence[int] | None, count: int) -> list[int]:
    """Each prompt's first sample index: `offsets` as given (one per prompt), else zeros."""
    if offsets is None:
        return [0] * count
    out = [int(x) for x in offsets]
    if len(out) != count or any(x < 0 for x in out):
        raise ValueError(f"offsets must give one non-negative sample index per prompt ({count})")
    return out
