"""`collm serve`: an OpenAI-compatible server that answers each request with
one aggregated answer, spending samples where they change the answer.

    collm serve --model smollm2-135m --port 8000
    collm serve --upstream http://127.0.0.1:8001/v1 --upstream http://127.0.0.1:8002/v1 \\
                --upstream-params 494032768 --policy policy.json --api-key-file keys.txt

With --model the model runs in this process (llama.cpp or torch); with
--upstream the samples come from OpenAI-compatible servers (vLLM, SGLang,
llama.cpp server, Ollama), load-balanced (collm.cli.options: the same
upstream options as every command that uses a model). API keys are read from
--api-key, --api-key-file (one a line) or COLLM_API_KEYS (comma-separated):
a file or the environment keeps them out of the process list.
"""

from __future__ import annotations

import ipaddress
import os
import sys

from collm.answers import get_task
from collm.cli.options import add_model_args, add_sampling_args, backend_from_args, check_model_args, sampling_from_args
from collm.errors import CollmError
from collm.policies import load_policy, policy_for
from collm.types import DEFAULT_TEMPERATURE


def add_parser(sub):
    p = sub.add_parser("serve", help="run the OpenAI-compatible server")
    add_model_args(p.add_argument_group("model: embedded (--model) or OpenAI-compatible upstreams (--upstream)"))
    p.add_argument("--policy", default="default",
                   help="how many samples a request gets: 'default' (the policy shipped for the model, else an "
                        "uncalibrated early-stop), 'none' (--default-n for every request), or a policy file of any "
                        "kind (allocation, strategy, or {\"kind\": \"thresholds\", ...})")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", action="append", default=[], metavar="KEY", help="accept this key (repeatable)")
    p.add_argument("--api-key-file", default=None, help="accept the keys in this file, one a line")
    p.add_argument("--served-model-name", default=None, help="the model name clients see (default: the model's)")
    p.add_argument("--task", default="gsm8k", help="default answer task: gsm8k, number, math, choice")
    p.add_argument("--execute-code", action="store_true",
                   help="answer with what the solution's own Python prints, where it has code (task NAME+program), "
                        "and let clients ask for it; the model's code then runs on this machine")
    lim = p.add_argument_group("budget and load")
    lim.add_argument("--default-n", type=int, default=4, help="samples per request with --policy none (default 4)")
    lim.add_argument("--max-n", type=int, default=16, help="most samples one request may use (default 16)")
    lim.add_argument("--max-tokens-limit", type=int, default=1024, help="largest max_tokens a client may ask")
    lim.add_argument("--max-prompt-chars", type=int, default=16000, help="largest prompt, all messages (default 16000)")
    lim.add_argument("--max-in-flight", type=int, default=None,
                     help="requests using the model at once (default 8 per upstream, and 8 for an embedded engine that batches "
                          "concurrent requests together, as llama.cpp does; else 1)")
    lim.add_argument("--max-queue", type=int, default=64, help="requests that may wait for a slot (default 64)")
    lim.add_argument("--tokens-per-s", type=float, default=None,
                     help="global token bucket refill (tokens/s; FLOPs = 2 x params x tokens); default: no bucket")
    lim.add_argument("--burst", type=float, default=None, help="global bucket capacity in tokens (default 60 s of refill)")
    lim.add_argument("--key-tokens-per-s", type=float, default=None, help="per-API-key bucket refill (tokens/s)")
    lim.add_argument("--key-burst", type=float, default=None, help="per-key bucket capacity (default 60 s of refill)")
    lim.add_argument("--timeout", type=float, default=300.0, help="seconds before a request gets 504 (default 300)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_sampling_args(p, temperature=DEFAULT_TEMPERATURE)  # what a request gets when it does not say
    return p


def _keys(args) -> list[str]:
    keys = list(args.api_key)
    if args.api_key_file:
        try:
            with open(args.api_key_file) as f:
                keys += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        except OSError as e:
            raise CollmError(f"cannot read --api-key-file: {e.strerror}") from None
    keys += [k.strip() for k in os.environ.get("COLLM_API_KEYS", "").split(",") if k.strip()]
    if any(len(k) < 8 for k in keys):
        raise CollmError("API keys must be at least 8 characters")
    return keys


def _validate(args) -> None:
    check_model_args(args)
    if not 0 < args.port < 65536:
        raise CollmError(f"--port must be in 1..65535 (got {args.port})")
    for name in ("default_n", "max_n", "max_tokens_limit", "max_prompt_chars", "max_queue"):
        if getattr(args, name) < (0 if name == "max_queue" else 1):
            raise CollmError(f"--{name.replace('_', '-')} must be positive")
    if args.max_in_flight is not None and args.max_in_flight < 1:
        raise CollmError("--max-in-flight must be at least 1")
    if args.default_n > args.max_n:
        raise CollmError(f"--default-n {args.default_n} is over --max-n {args.max_n}")
    if args.max_tokens > args.max_tokens_limit:
        raise CollmError(f"--max-tokens {args.max_tokens} is over --max-tokens-limit {args.max_tokens_limit}")
    for name in ("tokens_per_s", "burst", "key_tokens_per_s", "key_burst", "timeout"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise CollmError(f"--{name.replace('_', '-')} must be > 0")
    if args.policy not in ("default", "none"):
        if not os.path.isfile(args.policy):
            raise CollmError(f"policy file not found: {args.policy} (or use --policy default / none)")
        load_policy(args.policy)  # a malformed file is refused before any model loads or upstream is asked


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build(args):
    """(backend, policy, config) from parsed arguments; heavy imports happen here."""
    from collm.serve import ServeConfig

    keys = _keys(args)
    params = sampling_from_args(args)
    backend = backend_from_args(args)  # an upstream is reached and asked for its model here
    if args.upstream:
        name = args.served_model_name or backend.model or "collm"  # the upstream's own model id, as its clients know it
        in_flight = args.max_in_flight or 8 * len(args.upstream)
    else:
        name = args.served_model_name or args.model or backend.name
        in_flight = args.max_in_flight or (8 if backend.thread_safe else 1)  # an engine that batches calls: 8
    try:
        policy = policy_for(backend, args.policy, task_name(args))  # refused if made for another model
    except BaseException:
        backend.close()
        raise
    burst = args.burst or (60 * args.tokens_per_s if args.tokens_per_s else None)
    key_burst = args.key_burst or (60 * args.key_tokens_per_s if args.key_tokens_per_s else None)
    cfg = ServeConfig(model_name=name, api_keys=keys, default_n=args.default_n, max_n=args.max_n,
                      sampling=params, max_tokens_limit=args.max_tokens_limit,
                      max_prompt_chars=args.max_prompt_chars, max_in_flight=in_flight, max_queue=args.max_queue,
                      bucket_capacity=burst, bucket_refill_per_s=args.tokens_per_s,
                      key_bucket_capacity=key_burst, key_bucket_refill_per_s=args.key_tokens_per_s,
                      request_timeout_s=args.timeout, task=task_name(args))
    return backend, policy, cfg


def task_name(args) -> str:
    t = args.task
    return t + "+program" if getattr(args, "execute_code", False) and not t.endswith("+program") else t


def run(args) -> int:
    _validate(args)

    get_task(task_name(args))
    if task_name(args).endswith("+program"):
        from collm.answers.program import require_sandbox

        require_sandbox()  # refuse to start, before the model loads, rather than fail per request
    backend, policy, cfg = build(args)
    import uvicorn

    from collm.serve import create_app

    if not _loopback(args.host) and not cfg.api_keys:
        print(f"warning: serving on {args.host} without API keys: anyone who can reach it can spend its compute",
              file=sys.stderr)
    app = create_app(backend, cfg, policy=policy)
    print(f"collm serve: {cfg.model_name} ({backend.name}, {cfg.max_in_flight} in flight) on "
          f"http://{args.host}:{args.port}/v1", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        backend.close()
    return 0
