"""Load test of `collm serve` on loopback: adaptive policy vs uniform best-of-N
at equal average compute.

A fixed mix of easy and hard GSM8K test questions, alternating (easy: the
shared bank's Qwen2.5-Coder-0.5B solves at least half of its 32 samples;
hard: fewer), in bank order, is sent at a fixed concurrency with the official async openai client. Each configuration
gets its own server, started here on 127.0.0.1 and stopped afterwards:

1. adaptive: the server's policy (--policy, default: the model's shipped
   policy or collm's uncalibrated early-stop);
2. uniform: best-of-N forced by the client (`n`: never cut by load), for N
   the floor and the ceiling of the adaptive run's mean samples per request,
   which bracket its compute.

Reported per configuration: requests answered and refused, p50 / p95
latency, throughput, accuracy, mean samples and FLOPs per request, and the
share of requests whose budget was cut by load.

Modes:
    live    (default) `python -m collm serve --model M` in a subprocess: real
            latency. On a small CPU keep --max-tokens short: accuracy then
            says little (answers get cut), latency and throughput are real.
    replay  the server in this process on the shared sample bank (Qwen2.5-
            Coder-0.5B's real, graded samples): real accuracy at real
            sample lengths; latency is the server's own overhead only.

Bounded: at most --requests requests, no new request after --time-limit
seconds, every request with a timeout. Results go to --out (Markdown,
appended) with the command, machine and date.

    python bench/load.py --model smollm2-135m --requests 40 --concurrency 4 --max-tokens 32
    python bench/load.py --mode replay --requests 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BANK = "/work/shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def workload(bank_path: str, count: int, order: str = "balanced") -> list[dict]:
    """count questions in bank order (deterministic): alternating easy (bank pass rate >= 0.5) and hard
    (order 'balanced'), or as they come (order 'natural': the dataset's own mix)."""
    from collm.bank import load_bank
    from collm.datasets import load_dataset

    bank = load_bank(bank_path)
    rows = {p.id: p for p in load_dataset("gsm8k", "test")}
    easy, hard = [], []
    for p in bank.problems:
        rate = sum(s.ok for s in p.samples) / len(p.samples)
        (easy if rate >= 0.5 else hard).append(p.i)
    if order == "natural":
        easy_rows = set(easy)
        out = [{"i": p.i, "kind": "easy" if p.i in easy_rows else "hard"} for p in bank.problems]
    else:
        out = [{"i": i, "kind": kind} for e, h in zip(easy, hard) for i, kind in ((e, "easy"), (h, "hard"))]
    if len(out) < count:
        raise SystemExit(f"the bank has only {len(out)} easy/hard questions; ask for fewer requests")
    out = out[:count]
    for q in out:
        q["question"], q["gold"] = rows[q["i"]].question, rows[q["i"]].gold
    return out


def wait_ready(url: str, proc=None, limit_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} not ready after {limit_s:.0f} s")


async def drive(base: str, questions: list[dict], concurrency: int, max_tokens: int, time_limit: float,
                timeout: float, n: int | None = None, task_name: str = "gsm8k") -> dict:
    """Send the questions at fixed concurrency (with a forced n when given); return per-request records."""
    import openai

    from collm.answers import get_task

    task = get_task(task_name)
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=timeout)
    queue: asyncio.Queue = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    records: list[dict] = []
    t0 = time.monotonic()

    async def worker():
        while not queue.empty() and time.monotonic() - t0 < time_limit:
            q = queue.get_nowait()
            start = time.monotonic()
            rec = {"i": q["i"], "kind": q["kind"]}
            try:
                r = await client.chat.completions.create(
                    model="served", messages=[{"role": "user", "content": q["question"]}], max_tokens=max_tokens,
                    **({"n": n} if n else {}))
                info = r.model_extra["collm"]
                rec.update(status=200, samples=info["samples"], flops=info["flops"],
                           shrunk=info["budget"]["load_shrunk"], answer=info["answer"],
                           ok=bool(task.grade(info["answer"], q["gold"])), tokens=r.usage.total_tokens)
            except openai.APIStatusError as e:
                rec.update(status=e.status_code)
            except (openai.APITimeoutError, openai.APIConnectionError) as e:
                rec.update(status=type(e).__name__)
            rec["latency"] = time.monotonic() - start
            records.append(rec)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.monotonic() - t0
    await client.close()
    return {"records": records, "wall": wall}


def summarize(name: str, run: dict) -> dict:
    recs = run["records"]
    ok = [r for r in recs if r["status"] == 200]
    lat = sorted(r["latency"] for r in ok)

    def pct(p):
        if not lat:
            return float("nan")
        k = min(len(lat) - 1, max(0, round(p / 100 * len(lat) + 0.5) - 1))  # nearest rank
        return lat[k]

    by_kind = {}
    for kind in ("easy", "hard"):
        sub = [r for r in ok if r["kind"] == kind]
        by_kind[kind] = (sum(r["ok"] for r in sub) / len(sub) if sub else float("nan"),
                         statistics.mean(r["samples"] for r in sub) if sub else float("nan"))
    return {
        "config": name, "sent": len(recs), "answered": len(ok), "refused": len(recs) - len(ok),
        "p50_ms": 1000 * pct(50), "p95_ms": 1000 * pct(95),
        "throughput": len(ok) / run["wall"] if run["wall"] > 0 else float("nan"),
        "accuracy": sum(r["ok"] for r in ok) / len(ok) if ok else float("nan"),
        "samples": statistics.mean(r["samples"] for r in ok) if ok else float("nan"),
        "gflops": statistics.mean(r["flops"] for r in ok) / 1e9 if ok else float("nan"),
        "shrunk": sum(r["shrunk"] for r in ok) / len(ok) if ok else float("nan"),
        "easy": by_kind["easy"], "hard": by_kind["hard"], "wall": run["wall"],
    }


def fit_policy(args, questions: list[dict]) -> str:
    """Fit KIND to SAMPLES generations per question on the bank minus the workload; returns its JSON path."""
    from collm.allocation import BankView, get_policy
    from collm.backends.replay import ReplayBackend
    from collm.bank import load_bank
    from collm.cli.calibrate import EVALUATION_ROWS

    kind, _, samples = args.fit.partition(":")
    bank = load_bank(args.bank)
    used = {q["i"] for q in questions}
    rest = [j for j, p in enumerate(bank.problems) if p.i not in used]
    first = EVALUATION_ROWS.get((bank.header.get("dataset"), bank.header.get("split")))
    if first is not None and any(bank.problems[j].i >= first for j in rest):  # the data rule (collm calibrate's)
        raise SystemExit(f"--fit would fit on GSM8K test rows >= {first} (evaluation only): use the shipped policy")
    pol = get_policy(kind).fit(BankView(bank).subset(rest), samples=float(samples or 8))
    pol.model = ReplayBackend(bank).identity()
    path = str(Path(args.out).with_suffix(f".{kind}.policy.json"))
    pol.save(path)
    print(f"fitted {kind} on {len(rest)} questions: {pol.params}", file=sys.stderr)
    return path


# ---- servers ----

class LiveServer:
    """`python -m collm serve` in a subprocess on a free loopback port."""

    def __init__(self, args, policy_args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "collm", "serve", "--model", args.model, "--host", "127.0.0.1",
               "--port", str(self.port), "--max-tokens", str(args.max_tokens), "--max-n", str(args.max_n),
               "--served-model-name", "served", "--log-level", "warning", *policy_args]
        if args.engine:
            cmd += ["--engine", args.engine]
        self.log = open(Path(tempfile.gettempdir()) / "collm_load_server.log", "a")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self):
        wait_ready(self.url, self.proc)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


class ReplayServer:
    """The app on the shared bank (ReplayBackend), served by uvicorn in a thread on loopback."""

    def __init__(self, args, policy_args: list[str]):
        import uvicorn

        from collm.backends.replay import ReplayBackend
        from collm.serve import ServeConfig, create_app
        from collm.policies import policy_for
        from collm.types import SamplingParams

        backend = ReplayBackend(args.bank, seed=0)
        spec = policy_args[policy_args.index("--policy") + 1]
        default_n = int(policy_args[policy_args.index("--default-n") + 1]) if "--default-n" in policy_args else 4
        cfg = ServeConfig(model_name="served", default_n=default_n, max_n=args.max_n,
                          sampling=SamplingParams(max_tokens=args.max_tokens), max_tokens_limit=max(1024, args.max_tokens),
                          max_in_flight=args.concurrency)
        app = create_app(backend, cfg, policy=policy_for(backend, spec))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_ready(self.url, None, 60)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(20)


def run_config(args, name: str, policy_args: list[str], questions: list[dict], n: int | None = None) -> dict:
    Server = LiveServer if args.mode == "live" else ReplayServer
    load0 = os.getloadavg()[0]
    with Server(args, policy_args) as srv:
        if args.mode == "live":  # one warm-up request, not counted
            asyncio.run(drive(srv.url, [{"i": -1, "kind": "warm", "question": "What is 1 + 1?", "gold": "2"}],
                              1, args.max_tokens, 120, args.request_timeout))
        run = asyncio.run(drive(srv.url, questions, args.concurrency, args.max_tokens, args.time_limit,
                                args.request_timeout, n))
    s = summarize(name, run)
    s["load"] = (load0 + os.getloadavg()[0]) / 2
    print(json.dumps(s), file=sys.stderr)
    return s


def table(rows: list[dict]) -> str:
    out = ["| config | answered / sent | p50 ms | p95 ms | req/s | accuracy | easy acc | hard acc | samples/req "
           "(easy, hard) | GFLOPs/req | budget cut by load | machine load avg |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['config']} | {r['answered']} / {r['sent']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                   f"{r['throughput']:.2f} | {r['accuracy']:.3f} | {r['easy'][0]:.3f} | {r['hard'][0]:.3f} | "
                   f"{r['samples']:.2f} ({r['easy'][1]:.2f}, {r['hard'][1]:.2f}) | {r['gflops']:.1f} | "
                   f"{r['shrunk']:.0%} | {r['load']:.1f} |")
    return "\n".join(out)


def machine() -> str:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()}-core CPU ({cpu or platform.processor()}), no GPU, {platform.system()}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["live", "replay"], default="live")
    p.add_argument("--model", default="smollm2-135m", help="live mode: the model `collm serve` loads")
    p.add_argument("--engine", default=None)
    p.add_argument("--bank", default=BANK, help="the bank the questions (and replay samples) come from; its pass "
                   "rates label them easy or hard (held-out test rows >= 640: bench/results/gsm8k_heldout_qwen05b_k32.jsonl)")
    p.add_argument("--order", choices=["balanced", "natural"], default="balanced",
                   help="balanced: alternate easy and hard questions; natural: the bank's order and mix")
    p.add_argument("--policy", default="default", help="the adaptive configuration's --policy")
    p.add_argument("--fit", default=None, metavar="KIND:SAMPLES",
                   help="fit a collm.allocation policy (e.g. early-stop:8) on the bank's questions outside the "
                        "workload and use it as the adaptive policy (saved beside --out)")
    p.add_argument("--uniform-n", type=int, default=None, help="uniform N (default: the adaptive run's mean, rounded)")
    p.add_argument("--abba", action="store_true",
                   help="run every configuration twice, the second time in reverse order (a shared, busy machine)")
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-n", type=int, default=8)
    p.add_argument("--time-limit", type=float, default=600, help="seconds per configuration before no new request")
    p.add_argument("--request-timeout", type=float, default=300)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve.md"))
    args = p.parse_args(argv)
    if args.requests < 2 or args.concurrency < 1 or args.max_tokens < 1:
        p.error("--requests >= 2, --concurrency >= 1, --max-tokens >= 1")

    questions = workload(args.bank, args.requests, args.order)
    policy, label = args.policy, args.policy
    if args.fit:
        policy = fit_policy(args, questions)
        label = f"{args.fit}, fitted on the bank's other questions"
    rows = [run_config(args, f"adaptive ({label})", ["--policy", policy], questions)]
    if rows[0]["answered"] == 0:
        raise SystemExit("the adaptive configuration answered nothing: see the server log")
    mean = rows[0]["samples"]  # bracket the adaptive mean: floor and ceil
    ns = [args.uniform_n] if args.uniform_n else sorted({max(1, math.floor(mean)), max(1, math.ceil(mean))})
    for n in ns:
        rows.append(run_config(args, f"uniform best-of-{n}", ["--policy", "none"], questions, n=n))
    if args.abba:  # the same runs again in reverse order, so drifting machine load hits both sides alike
        for n in reversed(ns):
            rows.append(run_config(args, f"uniform best-of-{n} (2nd)", ["--policy", "none"], questions, n=n))
        rows.append(run_config(args, f"adaptive ({label}) (2nd)", ["--policy", policy], questions))

    cmd = "python bench/load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    what = (f"live `collm serve --model {args.model}`, max_tokens {args.max_tokens}" if args.mode == "live" else
            "replay of the shared bank (Qwen2.5-Coder-0.5B samples, max_tokens 400); latency = server overhead only")
    text = (f"\n## {what}\n\n- command: `{cmd}`\n- machine: {machine()}\n- date: {dt.date.today().isoformat()}\n"
            f"- workload: {args.requests} GSM8K test questions from `{Path(args.bank).name}` (rows "
            f"{min(q['i'] for q in questions)}-{max(q['i'] for q in questions)}), "
            f"{'half easy / half hard' if args.order == 'balanced' else 'in order, the natural mix'}, concurrency "
            f"{args.concurrency}, loopback, max {args.max_n} samples per request\n\n{table(rows)}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
