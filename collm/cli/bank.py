"""`collm bank build`: sample a dataset (a named one, or your .jsonl/.csv file)
into a bank, from an embedded model or an OpenAI-compatible upstream (resumable);
`collm bank join`: banks of the same problems drawn with different seeds,
joined into one with more samples per problem; `collm bank info`: a bank's
header and size."""

from __future__ import annotations

import json
import sys

from collm.bank.build import build_bank, make_header, open_out
from collm.backends.remote import UpstreamError
from collm.cli.options import (add_allow_ragged, add_dataset_args, add_model_args, add_sampling_args, backend_from_args,
                               check_model_args, problems_from_args, sampling_from_args)
from collm.errors import CollmError
from collm.prompts import DEFAULT_SYSTEM
from collm.types import DEFAULT_TEMPERATURE


def add_parser(sub):
    p = sub.add_parser("bank", help="build or inspect a sample bank", description=__doc__)
    bsub = p.add_subparsers(dest="bank_command", metavar="ACTION")
    b = bsub.add_parser("build", help="sample K graded answers per problem into a bank (resumes after a crash)",
                        description="Sample K graded answers per problem into a bank, from an embedded model "
                                    "(--model) or an OpenAI-compatible server (--upstream); resumable.")
    add_model_args(b, required=True)
    add_dataset_args(b)
    b.add_argument("--k", type=int, required=True, help="samples per problem")
    add_sampling_args(b, temperature=DEFAULT_TEMPERATURE)
    b.add_argument("--batch-size", type=int, default=4, help="an embedded model: problems per engine call (default 4)")
    b.add_argument("--concurrency", type=int, default=32,
                   help="an upstream: requests in flight at once (default 32, what a vLLM server batches well; "
                        "the problems under way when a build stops are redone by the resume)")
    b.add_argument("--out", required=True, help="bank file (JSONL); an existing one is resumed")
    b.add_argument("--keep-text", action="store_true",
                   help="store every sample's text in the bank (field t), for verifiers that read it")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    j = bsub.add_parser("join", help="join banks of the same rows drawn with different seeds (K adds up)")
    j.add_argument("files", nargs="+", metavar="BANK")
    j.add_argument("--out", required=True, help="the joined bank (a new file)")
    i = bsub.add_parser("info", help="print a bank's header, problems and K")
    i.add_argument("file")
    add_allow_ragged(i)
    p.set_defaults(_bank_parser=p)
    return p


def run(args) -> int:
    if args.bank_command == "info":
        from collm.bank.format import load_bank

        bank = load_bank(args.file, allow_ragged=args.allow_ragged)
        print(json.dumps({"path": bank.path, "problems": len(bank), "k": bank.k,
                          "rows": [bank.problems[0].i, bank.problems[-1].i], "header": bank.header}, indent=2))
        return 0
    if args.bank_command == "join":
        from collm.bank.format import load_bank
        from collm.bank.join import join_banks, write_bank

        bank, left_out = join_banks([load_bank(f) for f in args.files])
        write_bank(bank, args.out)
        if left_out:
            print(f"{len(left_out)} row(s) not in every bank were left out: {left_out[:10]}"
                  f"{' ...' if len(left_out) > 10 else ''}", file=sys.stderr)
        print(f"{args.out}: {len(bank)} problems, K = {bank.k} (seeds {bank.header['sampling']['seed']})",
              file=sys.stderr)
        return 0
    if args.bank_command != "build":
        args._bank_parser.print_help(sys.stderr)
        return 2
    return _build(args)


def _build(args) -> int:
    if args.k < 1:
        raise CollmError(f"--k must be at least 1 (got {args.k})")
    if args.batch_size < 1:
        raise CollmError(f"--batch-size must be at least 1 (got {args.batch_size})")
    if args.concurrency < 1:
        raise CollmError(f"--concurrency must be at least 1 (got {args.concurrency})")
    params = sampling_from_args(args)
    if params.temperature <= 0:
        raise CollmError("--temperature must be > 0 for sampled banks (the greedy decode is always added)")
    check_model_args(args)

    from pathlib import Path

    from collm.datasets import is_file_dataset

    problems = problems_from_args(args)
    open_out(Path(args.out)).close()  # fail before the model loads, not after
    remote = bool(args.upstream)
    backend = backend_from_args(args, max_in_flight=args.concurrency if remote else None)
    try:
        probe = prompt_signals(backend, problems[0], args.system or DEFAULT_SYSTEM) if remote else None
        signals = probe is not None if remote else True
        fields = ({"question": args.question_field or "question", "answer": args.answer_field or "answer"}
                  if is_file_dataset(args.dataset) else None)
        header = make_header(backend, args.model, args.dataset, args.split, problems[0].task, k=args.k,
                             params=params, system=args.system or DEFAULT_SYSTEM, keep_text=args.keep_text,
                             prompt_signals=signals, fields=fields)
        if not signals:
            print(f"note: {', '.join(args.upstream)} gives no prompt log-probs: the bank holds no prefix entropy "
                  "or prompt NLL (policies that need them will refuse it; early-stop and marginal do not)",
                  file=sys.stderr)
        res = build_bank(backend, problems, args.out, header, batch_size=args.batch_size, progress=not args.quiet,
                         concurrency=args.concurrency if remote else None,
                         scored={problems[0].id: probe} if probe is not None else None)
    except KeyboardInterrupt:
        print(f"stopped: every finished problem is saved in {args.out}; run the same command to resume",
              file=sys.stderr)
        raise
    except CollmError as e:
        if isinstance(e, UpstreamError) or "upstream" in str(e):
            raise CollmError(f"{e}; every finished problem is saved in {args.out}: run the same command to "
                             "resume") from None
        raise
    finally:
        backend.close()
    print(f"{res['path']}: {res['done']} problems written, {res['skipped']} already there, {res['total']} in all",
          file=sys.stderr)
    return 0


def prompt_signals(backend, problem, system):
    """The upstream's prompt score (echo + logprobs) of one problem, or None where
    it gives no prompt log-probs (a refusal, or an answer without them); a failure
    is an error. The build reuses the score for that problem."""
    from collm.prompts import Prompt

    try:
        return backend.score_prompt([Prompt(problem.question, system=system, id=problem.id)])[0]
    except UpstreamError:
        raise
    except CollmError:  # refused (4xx) or answered without prompt log-probs
        return None
