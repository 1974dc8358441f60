"""Options that several commands share, written once:

    add_model_args(p)      --model, --engine (the registered engines), or --upstream URL
                           (repeatable) with --upstream-model, --upstream-params,
                           --upstream-api-key (or COLLM_UPSTREAM_API_KEY), --upstream-timeout,
                           --upstream-context: an OpenAI-compatible server instead
    add_dataset_args(p)    --dataset NAME|FILE.jsonl|FILE.csv, --split, --offset, --limit,
                           --question-field, --answer-field, --task, --system, --skip-bad-rows
    add_sampling_args(p)   --temperature, --top-p, --top-k, --max-tokens, --seed
    add_allow_ragged(p)    --allow-ragged, for commands that read banks
    sampling_from_args(a)  the SamplingParams they say (collm.types: the one set of defaults)
    check_model_args(a)    refuse bad model/upstream options before anything loads
    backend_from_args(a)   the backend they name: the embedded model, or the upstream(s),
                           reached and asked for their model before it is returned
    problems_from_args(a)  the dataset's problems they name (bad rows reported by line)
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

from collm import backends
from collm.errors import CollmError
from collm.types import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, SamplingParams

UPSTREAM_KEY_ENV = "COLLM_UPSTREAM_API_KEY"


def engines() -> list[str]:
    return list(backends.ENGINES)


def parse_params(text: str) -> int:
    """--upstream-params: 134515008, 135M, 0.5B."""
    from collm.plan import parse_quantity

    return int(parse_quantity(text, "--upstream-params"))


def add_model_args(p, required: bool = False) -> None:
    """The model: embedded (--model/--engine) or OpenAI-compatible upstreams (--upstream ...).
    required: one of the two must be given (else --model defaults to the best installed)."""
    p.add_argument("--model", default=None,
                   help="model name (see `collm models`), GGUF path or Hugging Face folder"
                        + ("" if required else " (default: best installed)"))
    p.add_argument("--engine", choices=engines(), default=None, help="default: the preferred engine for the device")
    p.add_argument("--upstream", action="append", default=[], metavar="URL",
                   help="instead of --model: an OpenAI-compatible server's base URL (vLLM, SGLang, llama.cpp "
                        "server, Ollama), e.g. http://127.0.0.1:8001/v1; repeat to load-balance")
    p.add_argument("--upstream-model", default=None, help="model name on the upstream (default: its first model)")
    p.add_argument("--upstream-params", type=parse_params, default=None, metavar="P",
                   help="parameter count of the upstream model (134515008, 135M, 0.5B), for FLOP accounting "
                        "(2 x params x tokens); needed with --upstream")
    p.add_argument("--upstream-api-key", default=None, metavar="KEY",
                   help=f"API key the upstream wants (default: ${UPSTREAM_KEY_ENV}, which keeps it out of the "
                        "process list)")
    p.add_argument("--upstream-timeout", type=float, default=120.0, help="seconds per upstream request (default 120)")
    p.add_argument("--upstream-context", type=int, default=4096, help="the upstream model's context length")
    p.set_defaults(_model_required=required)


def check_model_args(args) -> None:
    """Refuse bad --model/--upstream options, before any model loads or any request is sent."""
    ups = getattr(args, "upstream", None) or []
    if ups and (args.model or args.engine):
        raise CollmError("give either --model/--engine (embedded) or --upstream URLs, not both")
    if not ups:
        given = [f"--{n.replace('_', '-')}" for n in ("upstream_model", "upstream_params", "upstream_api_key")
                 if getattr(args, n, None) is not None]
        if given:
            raise CollmError(f"{', '.join(given)} applies to --upstream URL, and none is given")
        if getattr(args, "_model_required", False) and not args.model:
            raise CollmError("give --model NAME (an embedded model) or --upstream URL (an OpenAI-compatible server)")
        return
    for u in ups:
        parsed = urlparse(u)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CollmError(f"--upstream {u!r} is not an http(s) URL like http://127.0.0.1:8001/v1")
    if args.upstream_params is None:
        raise CollmError("--upstream needs --upstream-params (the model's parameter count, for FLOP accounting)")
    if args.upstream_timeout <= 0:
        raise CollmError("--upstream-timeout must be > 0")
    if args.upstream_context < 1:
        raise CollmError("--upstream-context must be at least 1")


def add_dataset_args(p, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, default=None,
                   help="a dataset name (gsm8k, math500, svamp, ...) or your own questions: a .jsonl or .csv file "
                        "(each row's id is its line number)")
    p.add_argument("--split", default="test", help="split of a named dataset (default test)")
    p.add_argument("--offset", type=int, default=0, help="first row (default 0)")
    p.add_argument("--limit", type=int, default=None, help="number of problems (default: all)")
    p.add_argument("--question-field", default=None, help="a file's question field (default 'question')")
    p.add_argument("--answer-field", default=None, help="a file's gold-answer field (default 'answer')")
    p.add_argument("--task", default=None,
                   help="how answers are read and graded: gsm8k, number, math, choice, exact, regex "
                        "(default: the dataset's; a file's: number)")
    p.add_argument("--system", default=None,
                   help="system message (default: reason step by step, answer in \\boxed{})")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip (and count) rows of a file without the fields, with an empty question or a gold "
                        "answer the task cannot read, instead of stopping at the first")


def problems_from_args(args) -> list:
    """The problems --dataset and friends name; a file's bad rows stop it, naming the line,
    unless --skip-bad-rows (then they are counted on stderr)."""
    from collm.datasets import load_dataset

    skipped: list = []
    problems = load_dataset(args.dataset, args.split, args.offset, args.limit, question_field=args.question_field,
                            answer_field=args.answer_field, task=args.task, skip_bad_rows=args.skip_bad_rows,
                            skipped=skipped)
    if skipped:
        lines = ", ".join(str(ln) for ln, _ in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        print(f"skipped {len(skipped)} bad row(s) of {args.dataset} (lines {lines}; first: {skipped[0][1]})",
              file=sys.stderr)
    if not problems:
        raise CollmError(f"no problems in {args.dataset}" + ("" if os.path.isfile(args.dataset) else f"/{args.split}")
                         + f" from row {args.offset}")
    return problems


def add_sampling_args(p, *, temperature: float | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
    """The sampling options; temperature None means "not said" (a command decides: greedy for one generation)."""
    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=float, default=temperature,
                   help=f"sampling temperature (default {DEFAULT_TEMPERATURE} when sampling"
                        + (", a greedy pass for a single generation)" if temperature is None else ")"))
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0: off)")
    g.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                   help=f"sample from the k most likely tokens (default {DEFAULT_TOP_K}, as the shipped policies "
                        "were calibrated; 0: the whole vocabulary)")
    g.add_argument("--max-tokens", type=int, default=max_tokens,
                   help=f"new tokens per generation at most (default {max_tokens}); a generation cut there has no answer")
    g.add_argument("--seed", type=int, default=0, help="fixes every sample (default 0)")


def sampling_from_args(args) -> SamplingParams:
    t = args.temperature if args.temperature is not None else DEFAULT_TEMPERATURE
    p = SamplingParams(temperature=t, top_p=args.top_p, top_k=args.top_k, max_tokens=args.max_tokens, seed=args.seed)
    try:
        return p.check()
    except CollmError as e:  # name the option, not the field
        raise CollmError("--" + str(e).replace("_", "-", 1)) from None


def add_allow_ragged(p) -> None:
    """--allow-ragged, for the commands that read banks (collm.bank.load_bank)."""
    p.add_argument("--allow-ragged", action="store_true",
                   help="read a bank whose problems hold different numbers of samples (K is then the smallest), "
                        "or a problem twice; refused by default")


def backend_from_args(args, max_in_flight: int | None = None):
    """The embedded model --model/--engine name, or the upstreams --upstream names
    (each reached and asked for its model first: an unreachable one, or one
    without --upstream-model, is an error here, before any work).
    max_in_flight: upstream requests at once (None: no limit)."""
    check_model_args(args)
    if not getattr(args, "upstream", None):
        return backends.load_backend(args.model, args.engine)
    from collm.backends.remote import RemoteBackend, reached

    return reached(RemoteBackend(args.upstream, model=args.upstream_model, params=args.upstream_params,
                                 api_key=args.upstream_api_key or os.environ.get(UPSTREAM_KEY_ENV),
                                 timeout=args.upstream_timeout, context_length=args.upstream_context,
                                 max_in_flight=max_in_flight))
