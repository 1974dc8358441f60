"""The sandbox program answers run in (collm.answers.program): every escape a
model's code could try fails, the old limits still hold, and without
bubblewrap program answers are refused, never run unsandboxed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import collm
from collm.answers import get_task, program
from collm.answers.program import WALL_S, program_answer, run_program
from collm.errors import CollmError

needs_sandbox = pytest.mark.skipif(program.sandbox_problem() is not None, reason=str(program.sandbox_problem()))
REPO = str(Path(collm.__file__).resolve().parent.parent)


def _processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds marker (the test's own excluded)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.fixture
def marker():
    """A unique string to put in a program, to find its processes on the host;
    any still running at the end are killed, so a failing test leaves none."""
    m = f"collm-sandbox-test-{uuid.uuid4().hex}"
    yield m
    for pid in _processes_with(m):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---- what programs are for ----

@needs_sandbox
def test_benign_code_prints_its_number():
    assert program_answer("```python\nprint(6 * 7)\n```\n```output\n41\n```") == "42"
    r = run_program("import os\nopen('f', 'w').write('x')\nprint(os.getcwd(), sorted(os.listdir('.')), sorted(os.environ))")
    assert r.ok and r.stdout.startswith("/tmp ['f'] ") and "HOME" not in r.stdout and "PATH" not in r.stdout
    if os.geteuid() == 0:  # root's programs run as nobody, where the process limit applies
        assert run_program("import os\nprint(os.getuid(), os.getgid(), os.getgroups())").stdout.strip() == "65534 65534 []"


@needs_sandbox
def test_the_old_limits_still_hold():
    assert program_answer("```python\nwhile True:\n    pass\n```") is None
    t0 = time.perf_counter()
    r = run_program("import time\ntime.sleep(60)", timeout=1.0)
    assert not r.ok and r.error == "timeout" and time.perf_counter() - t0 < 3
    assert not run_program("x = bytearray(1 << 30)\nprint(len(x))").ok  # 1 GiB: over the memory limit
    assert not run_program("open('f', 'w').write('x' * (2 << 20))").ok  # over the file size limit
    assert run_program("import sys\nprint(sys.flags.isolated, sys.stdin.read() == '')").stdout.split() == ["1", "True"]


@needs_sandbox
def test_files_written_inside_vanish_after_the_run(marker):
    try:
        assert run_program(f"open('{marker}', 'w').write('x')\nopen('/tmp/t-{marker}', 'w').write('x')").ok
        r = run_program(f"import os\nprint(os.listdir('.'), os.listdir('/tmp'))  # {marker}")
        assert r.ok and r.stdout.strip() == "[] []"
    finally:
        Path(f"/tmp/t-{marker}").unlink(missing_ok=True)  # where an unsandboxed run would have left it


# ---- the escapes ----

@needs_sandbox
def test_no_write_outside_through_dot_dot(marker):
    name = f"escape-{marker}"
    outside = [Path(tempfile.gettempdir()) / name, Path("/") / name, Path(tempfile.gettempdir()).parent / name]
    try:
        r = run_program(f"for up in ('../', '../../', '../../../'):\n"
                        f"    try:\n        open(up + '{name}', 'w').write('x')\n        print('wrote', up)\n"
                        f"    except OSError as e:\n        print('refused', up, e)")
        assert "wrote" not in r.stdout, r.stdout
        assert not any(p.exists() for p in outside)
    finally:
        for p in outside:
            p.unlink(missing_ok=True)


@needs_sandbox
def test_no_write_by_absolute_path(tmp_path, marker):
    tmp_path.chmod(0o777)  # writable by anyone: only the sandbox stands in the way
    targets = [tmp_path / "escaped.txt", Path("/dev/shm") / marker, Path("/var/tmp") / marker]
    try:
        r = run_program(f"for path in {[str(t) for t in targets]!r}:\n"
                        "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
                        "    except OSError as e:\n        print('refused', path, e)")
        assert r.ok and "wrote" not in r.stdout, r.stdout
        assert not any(t.exists() for t in targets)
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


@needs_sandbox
def test_no_view_of_the_host_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-content")
    tmp_path.chmod(0o755)
    secret.chmod(0o644)  # readable by anyone: only the sandbox stands in the way
    home = Path.home()
    code = ("import os\n"
            f"for d in ({str(tmp_path)!r}, {REPO!r}, {str(Path(collm.__file__).parent)!r}, '/etc', {str(home)!r}):\n"
            "    try:\n        print(d, sorted(os.listdir(d)))\n    except OSError as e:\n        print(d, 'refused', e)\n"
            f"try:\n    print(open({str(secret)!r}).read())\nexcept OSError as e:\n    print('refused', e)\n")
    r = run_program(code)
    assert r.ok and "the-secret-content" not in r.stdout and "'secret.txt'" not in r.stdout, r.stdout
    assert "test_program_sandbox.py" not in r.stdout and "api.py" not in r.stdout  # not the project
    assert "passwd" not in r.stdout and "hostname" not in r.stdout  # not /etc
    # of the home directory, at most the way to the interpreter (a pyenv under /root, say) is there
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"{home} "))
    on_the_way = {Path(d).relative_to(home).parts[0] for d in program._python_dirs() if Path(d).is_relative_to(home)}
    hidden = {p.name for p in home.iterdir()} - on_the_way
    assert not any(repr(name) in line for name in hidden), line


@needs_sandbox
def test_no_network_not_even_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        r = run_program(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                        "    print('connected')\nexcept OSError as e:\n    print('refused', e)")
        assert r.ok and "connected" not in r.stdout and "refused" in r.stdout
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


WRAPPER = """
import sys
from collm.answers.program import run_program
r = run_program(sys.argv[1])
print(r.ok, r.stdout)
"""
SNOOP = """
import os
seen = []
ppid = os.getppid()
for path in [f'/proc/{ppid}/environ', f'/proc/{ppid}/cmdline'] + [f'/proc/{p}/{f}' for p in os.listdir('/proc')
                                                                    if p.isdigit() for f in ('environ', 'cmdline')]:
    try:
        seen.append(open(path, 'rb').read().decode(errors='replace'))
    except OSError:
        pass
print('parent', ppid, 'read', len(seen), 'files:', seen)
"""


@needs_sandbox
def test_no_view_of_the_callers_environment_or_command_line():
    secret = f"sk-secret-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": REPO, "COLLM_API_KEYS": secret}
    p = subprocess.run([sys.executable, "-c", WRAPPER, SNOOP, f"--api-key={secret}"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("True parent"), p.stdout + p.stderr
    assert secret not in p.stdout


@needs_sandbox
def test_forked_sleepers_die_with_the_call(marker):
    code = (f"# {marker}\nimport os, time\nn = 0\nfor _ in range(30):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
            "    n += 1\nprint(n)")
    r = run_program(code)
    assert _processes_with(marker) == []  # none outlives the call...
    assert r.ok and int(r.stdout) >= 5  # ...and they were started


@needs_sandbox
def test_a_daemon_dies_with_the_call_and_does_not_hold_it(marker):
    code = (f"# {marker}\nimport os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        os.closerange(0, 1024)\n        time.sleep(60)\n    os._exit(0)\nos.wait()\nprint('detached')")
    t0 = time.perf_counter()
    r = run_program(code)
    assert r.ok and r.stdout.strip() == "detached" and time.perf_counter() - t0 < WALL_S / 2
    assert _processes_with(marker) == []


@needs_sandbox
def test_a_fork_bomb_stops_at_the_process_limit(marker):
    code = (f"# {marker}\nimport os, time\nn = 0\nfor _ in range(500):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        continue\n    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n"
            "    n += 1\nprint(n)")
    r = run_program(code)
    n = int(r.stdout.split()[0])
    assert 1 <= n < program.MAX_TASKS, n  # the interpreter itself is one of the tasks
    assert _processes_with(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


# ---- no sandbox: a clear refusal ----

@pytest.fixture
def no_bwrap(tmp_path, monkeypatch):
    """bwrap is not on PATH (the availability check is redone, then forgotten)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    program.sandbox_problem.cache_clear()
    yield
    program.sandbox_problem.cache_clear()


def test_without_bwrap_program_answers_are_refused(no_bwrap, marker):
    from collm.bank.format import Bank

    problem = program.sandbox_problem()
    assert "bubblewrap" in problem and "apt-get install bubblewrap" in problem and "\n" not in problem
    code = f"```python\nprint(1)  # {marker}\n```"
    with pytest.raises(CollmError, match="apt-get install bubblewrap"):
        program_answer(code)
    task = get_task("gsm8k+program")  # building the task runs nothing...
    assert task.name == "gsm8k+program" and task.extract("no code, \\boxed{3}") == "3"
    with pytest.raises(CollmError, match="apt-get install bubblewrap"):
        task.extract(code)  # ...running its code is refused
    with pytest.raises(CollmError, match="apt-get install bubblewrap"):
        Bank("<empty>", [], {}).with_program_answers()


def test_a_bwrap_that_cannot_make_namespaces_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(program, "_tools", lambda: (str(fake), "setpriv" if os.geteuid() == 0 else None))
    program.sandbox_problem.cache_clear()
    try:
        with pytest.raises(CollmError, match="cannot start here .bwrap: No permissions to create new namespace"):
            program.require_sandbox()
    finally:
        monkeypatch.undo()
        program.sandbox_problem.cache_clear()


@pytest.mark.parametrize("argv", [
    ["ask", "What is 2 + 2?", "--execute-code"],
    ["eval", "--bank", "no-such-bank.jsonl", "--execute-code"],
    ["calibrate", "--bank", "no-such-bank.jsonl", "--policy", "uniform", "--budget", "4", "--out", "p.json",
     "--execute-code"],
    ["serve", "--execute-code"],
])
def test_without_bwrap_the_commands_refuse_before_any_model_work(argv, no_bwrap, monkeypatch, capsys):
    import collm.backends

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(collm.backends, "load_backend", no_model)
    from collm.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: program answers run in a bubblewrap sandbox") and "apt-get install bubblewrap" in err
    assert len(err.strip().splitlines()) == 1
