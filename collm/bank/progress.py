"""The bank build's progress bar: problems done and the ETA (tqdm's), with
samples/s and tokens/s of this run beside them."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, done: int, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="problem", desc="bank", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True)
        self.t0 = time.perf_counter()
        self.samples = self.tokens = 0

    def add(self, samples: int, tokens: int) -> None:
        """One problem finished, with its samples (greedy included) and generated tokens."""
        self.samples += samples
        self.tokens += tokens
        dt = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{self.samples / dt:.1f} samples/s, {self.tokens / dt:.0f} tokens/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
