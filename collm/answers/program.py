"""Program answers: run the Python a solution wrote and read what it prints.

A code model asked to reason step by step often writes a ```python block and
then, having no interpreter, invents its ```output. Running the program gives
what the model's own program computes, which is right more often than the
number it made up (bench/results/arithmetic_check.md measures it). This is
program-aided answering (PAL, Gao et al. 2023; PoT, Chen et al. 2022) applied
after the fact: no model call, only the program's CPU time.

    program_answer(text)   -> the last number the solution's code prints, or None
    run_program(code)      -> RunResult(ok, stdout, error, seconds)
    require_sandbox()      -> None, or CollmError saying how to make it available
    get_task("gsm8k+program") -> the gsm8k task answering with the printed number
                              where the solution has code that prints one

Each program runs as `python -I -c CODE` in a bubblewrap (`bwrap`) sandbox
of its own, which gives:

- no network: a new network namespace, without even loopback to the host;
- no view of other processes: a new pid namespace with its own /proc, so the
  caller's /proc/<pid>/environ and cmdline (a server's API keys) are out of reach;
- a read-only filesystem holding only /usr, the /bin and /lib links, the
  interpreter's own directories (its prefix, its virtual environment), a
  minimal /dev and that /proc, with an empty 16 MiB tmpfs as /tmp, the
  working directory; nothing else of the host (/root, /home, /etc, the
  project) is there, writes anywhere else fail, and what it writes
  vanishes with it;
- at most MAX_TASKS (16) processes and threads at once (RLIMIT_NPROC), so a
  fork bomb stops there. The kernel does not apply that limit to root, so
  when collm runs as root the program runs as nobody (uid 65534): bwrap
  starts as root, without a user namespace, and setpriv drops to nobody
  just before Python starts. Run as any other user, bwrap makes a user
  namespace (which the kernel must allow) and the program runs as that user;
- every process it starts ends with it: when the program exits or times
  out, its pid namespace is torn down, daemons included, and the call
  returns only once that is done;
- the limits it always had: CPU time (2 s) and memory (512 MiB) for each
  of its processes, file size (1 MiB), a wall-clock timeout (5 s), no
  stdin, an empty environment.

There is no seccomp filter: the program may still make any system call the
kernel allows an unprivileged process. Without bwrap (or setpriv, as root),
or where bwrap cannot make its namespaces, program answers are refused with
a CollmError naming the fix, never run unsandboxed; that is found once per
process, by running a tiny program (sandbox_problem).

Cost: the sandbox adds 10 to 35 ms a program to the interpreter's own
start-up, measured on two shared cores: a paired median of 9 ms for
`print(1)` (70 ms against 60 ms unsandboxed) while they were lightly
loaded, 33 ms (214 against 181 ms) over the 793 distinct programs of
bench/results/gsm8k_heldout_qwen05b_k16.jsonl while they were busy, with
the same answer for every one of those programs. Answering a bank again
thus costs minutes per ten thousand programs; results are cached by code.

Running code stays off unless the operator asks for it (`--execute-code`);
a server's clients cannot.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from collm.answers.registry import PROGRAM_SUFFIX, Task, register_variant
from collm.errors import CollmError

CPU_S, MEMORY_MB, FILE_MB, WALL_S = 2, 512, 1, 5.0
TMP_MB = 16  # the sandbox's writable /tmp
MAX_TASKS = 16  # processes and threads a program may have at once, its interpreter included
NOBODY = 65534  # who runs the program when collm runs as root
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)(?:```|$)", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FIX = "apt-get install bubblewrap, or leave out --execute-code"


@dataclass(frozen=True)
class RunResult:
    ok: bool  # exited 0 within the limits
    stdout: str
    error: str = ""  # last line of stderr, or "timeout"
    seconds: float = 0.0


def python_blocks(text: str) -> list[str]:
    """The ```python code blocks of a solution, in order."""
    return [b for b in _BLOCK.findall(text) if b.strip()]


# ---- the sandbox ----

def _as_root() -> bool:
    return os.geteuid() == 0


def _tasks_of(uid: int) -> int:
    """How many tasks (processes and threads) uid runs now: RLIMIT_NPROC
    counts them all, the host's included, so the limit is set above them."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:  # it ended meanwhile
                pass
    return n


def _limits(nproc: int):
    """The child's limits, set before it starts bwrap; they pass to the program."""
    def apply():
        for what, value in ((resource.RLIMIT_CPU, CPU_S), (resource.RLIMIT_AS, MEMORY_MB << 20),
                            (resource.RLIMIT_FSIZE, FILE_MB << 20), (resource.RLIMIT_NPROC, nproc)):
            resource.setrlimit(what, (value, value))
    return apply


def _python_dirs() -> list[str]:
    """The directories the interpreter needs besides /usr: its prefix, its
    virtual environment's, and where its executable really lives."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable))}
    kept: list[str] = []
    for d in sorted(os.path.abspath(d) for d in dirs):
        if d != "/" and not any(d == k or d.startswith(k.rstrip("/") + "/") for k in ["/usr", *kept]):
            kept.append(d)
    return kept


@functools.cache
def _filesystem() -> tuple[str, ...]:
    """bwrap arguments for the read-only view: /usr, the top-level /bin and
    /lib links (or directories), the interpreter's directories and nothing
    else; the directories above those are made traversable (0755)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    made: set[str] = set()
    for d in _python_dirs():
        parts = d.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", d, d]
    return tuple(args)


def _sandbox_argv(bwrap: str, setpriv: str | None, code: str, info_fd: int) -> list[str]:
    """The command line: bwrap's namespaces and mounts, then (as root) setpriv
    dropping to nobody, then `python -I -c code`."""
    argv = [bwrap, "--info-fd", str(info_fd), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if setpriv:  # as root: no user namespace (its root would be exempt from RLIMIT_NPROC); setpriv drops to nobody
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--disable-userns"]
    argv += [*_filesystem(), "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--perms", "1777", "--size", str(TMP_MB << 20), "--tmpfs", "/tmp", "--chdir", "/tmp", "--remount-ro", "/"]
    if setpriv:
        argv += [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]
    return argv + [sys.executable, "-I", "-c", code]


def _tools() -> tuple[str | None, str | None]:
    """(bwrap, setpriv) as found on PATH; setpriv is only needed as root."""
    return shutil.which("bwrap"), shutil.which("setpriv") if _as_root() else None


def _sandbox_pidfd(info_fd: int) -> int | None:
    """A pidfd for the sandbox's pid 1, from the JSON bwrap writes on --info-fd
    (it closes the pipe before the program starts); None if it did not get that far."""
    with os.fdopen(info_fd, "rb") as f:
        info = f.read()
    try:
        return os.pidfd_open(int(json.loads(info)["child-pid"]))
    except (ValueError, KeyError, OSError, AttributeError):
        return None


def _await_teardown(pidfd: int | None) -> None:
    """Wait until the sandbox's pid 1 has exited. bwrap itself returns as soon
    as the program does, while its pid 1, killed with it, is still taking the
    pid namespace down; only once that pid 1 is gone is every process of the
    program (a daemon it left, say) gone too."""
    if pidfd is None:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(1000 * WALL_S)
    finally:
        os.close(pidfd)


def _run_sandboxed(code: str, timeout: float) -> RunResult:
    bwrap, setpriv = _tools()
    if bwrap is None or (_as_root() and setpriv is None):
        raise CollmError(sandbox_problem() or "the program sandbox went missing")
    nproc = _tasks_of(NOBODY if setpriv else os.getuid()) + MAX_TASKS
    t0 = time.perf_counter()
    info_r, info_w = os.pipe()
    try:
        p = subprocess.Popen(_sandbox_argv(bwrap, setpriv, code, info_w), env={}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                             pass_fds=(info_w,), preexec_fn=_limits(nproc))
    except OSError as e:
        os.close(info_r)
        return RunResult(False, "", f"could not start the sandbox: {e}", time.perf_counter() - t0)
    finally:
        os.close(info_w)
    pidfd = _sandbox_pidfd(info_r)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # killing bwrap kills the sandbox's pid 1 (--die-with-parent), and all with it
        p.kill()
        p.communicate()
        return RunResult(False, "", "timeout", time.perf_counter() - t0)
    finally:
        _await_teardown(pidfd)
    err = err.strip().splitlines()[-1] if err.strip() else ""
    if p.returncode != 0 and not err:
        sig = p.returncode - 128 if p.returncode > 128 else -p.returncode
        err = f"killed by signal {sig} (a limit was hit)" if sig > 0 else f"exit status {p.returncode}"
    return RunResult(p.returncode == 0, out, err, time.perf_counter() - t0)


@functools.cache
def sandbox_problem() -> str | None:
    """Why programs cannot run here (one line with the fix), or None when
    the sandbox works; found once per process by running a tiny program."""
    bwrap, setpriv = _tools()
    if bwrap is None:
        return f"program answers run in a bubblewrap sandbox, which is not available here: {_FIX}"
    if _as_root() and setpriv is None:
        return ("program answers run as nobody in a bubblewrap sandbox, and setpriv, which drops root, is not "
                "available here: apt-get install util-linux, or leave out --execute-code")
    r = _run_sandboxed("print(6 * 7)", timeout=30.0)
    if r.ok and r.stdout.strip() == "42":
        return None
    fix = ("give it the right to make namespaces (in a container: --cap-add SYS_ADMIN --security-opt seccomp=unconfined)"
           if _as_root() else "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
                              "on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0)")
    return (f"program answers run in a bubblewrap sandbox, which cannot start here ({r.error or 'no output'}): "
            f"{fix}, or leave out --execute-code")


def require_sandbox() -> None:
    """Refuse (CollmError) unless programs can run in the sandbox here."""
    problem = sandbox_problem()
    if problem:
        raise CollmError(problem)


@functools.lru_cache(maxsize=1 << 14)
def run_program(code: str, timeout: float = WALL_S) -> RunResult:
    """Run code in the sandbox; refuses (CollmError) where there is none."""
    require_sandbox()
    return _run_sandboxed(code, timeout)


def last_number(s: str) -> str | None:
    """The last number in s, written canonically ("18", "2.5"), or None."""
    found = _NUMBER.findall(s or "")
    if not found:
        return None
    try:
        x = float(found[-1].replace(",", ""))
    except ValueError:
        return None
    if x != x or abs(x) == float("inf"):
        return None
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(round(x, 6))


def program_task(task):
    """`task` with an extractor that prefers the number the solution's code
    prints. Building it runs nothing; its extractor refuses without the sandbox."""
    def extract(text: str):
        a = program_answer(text)
        return a if a is not None else task.extract(text)

    return Task(task.name + PROGRAM_SUFFIX, extract, task.grade,
                f"{task.description} Where the solution has Python code that runs and prints a number, "
                "that number is the answer.".strip())


def program_answer(text: str) -> str | None:
    """Run the solution's Python blocks (joined, in order) and return the last
    number printed; None when there is no code, it fails, or prints no number."""
    blocks = python_blocks(text)
    if not blocks:
        return None
    r = run_program("\n".join(blocks))
    return last_number(r.stdout) if r.ok else None


register_variant(PROGRAM_SUFFIX, program_task)
