"""`collm demo` on the real SmolLM2: three methods on held-out questions, and
the adaptive policy held to the FLOPs best-of-N spent (equal compute)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.model
def test_demo_holds_adaptive_to_the_flops_best_of_n_spent():
    r = subprocess.run([sys.executable, "-m", "collm", "demo", "--model", "smollm2-135m", "--questions", "2",
                        "--n", "4", "--max-tokens", "16"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("summary")] == \
        ["greedy", "best-of-4", "adaptive"]
    m = re.search(r"^adaptive / best-of-4: FLOPs ([0-9.]+)x, wall ([0-9.]+)x \(budget: the FLOPs best-of-4 spent\)$",
                  r.stdout, re.M)
    assert m, r.stdout[-2000:]
    assert 0 < float(m.group(1)) <= 1.0 and float(m.group(2)) > 0


def test_demo_refuses_bad_counts_with_one_line(capsys):
    from collm.cli import main

    assert main(["demo", "--questions", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--questions and --n must be at least 1" in err[0]
