"""Build a sample bank: K graded samples, one greedy decode and the prefix
signal per problem, written one line per problem as each batch finishes
(an embedded model: --batch-size problems per engine call) or as each
problem finishes (an upstream server: --concurrency requests in flight,
collm.bank.inflight).

The header says what the bank can be trusted for: the model (name, sha256
or an upstream's model id, the parameter count), the sampling settings, the
prompt (system message, template) and the signals it holds. An upstream
that gives no prompt log-probs (echo + logprobs on /v1/completions) gives
no prefix entropy or prompt NLL: the header says signals.prompt false, the
lines hold empty q_entropy / q_nll, and every policy that needs them refuses
the bank (collm.allocation.replay); the draw-only ones calibrate as usual.

The file starts with its header line. Every problem line is flushed and
fsync'ed as soon as it is written, so a crash, kill -9 or Ctrl-C loses at
most the batch in flight: running the same command again keeps every
complete line, drops a line cut in the middle of a write, and does only the
problems not in the file yet. A resume with other settings (model, dataset,
sampling) is refused rather than mixing two banks in one file, and an
exclusive lock keeps two builders off the same file.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from collm.answers import extract_all, get_task
from collm.bank.format import FORMAT_VERSION, HEADER_KEY, encode_line, header_field, parse_problem
from collm.bank.inflight import build_in_flight
from collm.bank.progress import Progress
from collm.errors import CollmError
from collm.prompts import DEFAULT_SYSTEM, Prompt
from collm.types import SamplingParams
from collm.version import __version__

# header fields that must match for a resume to continue a file
SAME = (("model", "name"), ("model", "sha256"), ("model", "params"), ("dataset",), ("split",),
        ("sampling", "k"), ("sampling", "temperature"), ("sampling", "top_p"), ("sampling", "top_k"), ("sampling", "max_tokens"),
        ("sampling", "seed"), ("prompt", "system"), ("extractor",), ("texts",), ("signals", "prompt"),
        ("fields", "question"), ("fields", "answer"))

PROMPT_SIGNALS = ["q_tokens", "prefix_entropy", "prompt_nll"]


def make_header(backend, model: str, dataset: str, split: str, task: str, *, k: int, params: SamplingParams,
                system: str | None = DEFAULT_SYSTEM, keep_text: bool = False, prompt_signals: bool = True,
                fields: dict | None = None) -> dict:
    """The bank's first line. An upstream (backend.name "remote") is recorded by
    its model id and the parameter count given; prompt_signals says whether
    the prefix entropy and prompt NLL could be measured; fields, for a
    dataset file, the question and answer fields read."""
    template = backend.template
    source = getattr(template, "source", None)
    remote = backend.name == "remote"
    if remote:
        ident = backend.identity()
        m = {"name": ident["name"], "sha256": None, "model_id": ident["name"], "params": int(backend.params),
             "engine": "remote", "upstream": list(getattr(backend, "urls", []))}
        how = "the upstream's own chat template (/v1/chat/completions), generation prompt added"
    else:
        m = {"name": model, "sha256": getattr(getattr(backend, "resolved", None), "sha256", None) or backend.model_id or None,
             "model_id": backend.model_id or None, "params": int(backend.params), "engine": backend.name}
        how = "the model's chat template, generation prompt added"
    header = {
        HEADER_KEY: FORMAT_VERSION,
        "model": m,
        "dataset": dataset, "split": split,
        "prompt": {"system": system, "template": how,
                   "template_sha256": hashlib.sha256(source.encode()).hexdigest() if source and not remote else None},
        "signals": {"prompt": bool(prompt_signals),
                    "recorded": PROMPT_SIGNALS if prompt_signals else ["q_tokens (estimated: 3 characters a token)"],
                    "source": ("the upstream's prompt log-probs (echo + logprobs on /v1/completions, top-5 entropy)"
                               if remote else "one forward pass over the prompt")
                    if prompt_signals else "none: the upstream returns no prompt log-probs; policies that need "
                                           "prefix entropy or prompt NLL refuse this bank"},
        "sampling": {"k": k, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
                     "max_tokens": params.max_tokens, "seed": params.seed,
                     "streams": "per sample: (seed, sample index, prompt tokens), collm.backends.seeding"},
        "extractor": f"{task} (collm.answers; a sample cut at max_tokens has no answer)",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "collm_version": __version__,
    }
    if keep_text:  # every sample line then carries its text as "t"
        header["texts"] = True
    if fields:
        header["fields"] = dict(fields)
    return header


def _write_line(f, obj: dict) -> None:
    f.write(encode_line(obj))
    f.flush()
    os.fsync(f.fileno())


def resume(f, path: Path, header: dict) -> set[int]:
    """Make the open file (binary, read/write) ready to append: write the
    header into an empty file, or check the existing header, drop a cut last
    line and return the rows already done."""
    f.seek(0)
    data = f.read()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):  # the last write was cut short: drop it, it is redone
        f.truncate(cut)
        data = data[:cut]
    f.seek(0, os.SEEK_END)
    if not data:
        _write_line(f, header)
        return set()
    done: set[int] = set()
    lines = data.split(b"\n")[:-1]
    for ln, raw in enumerate(lines, 1):
        try:
            d = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CollmError(f"{path}:{ln}: not valid JSON; not a bank this command can resume") from None
        if ln == 1:
            if not isinstance(d, dict) or HEADER_KEY not in d:
                raise CollmError(f"{path} exists and is not a bank built by collm (no header line); choose another --out")
            diff = [".".join(p) for p in SAME if header_field(d, p) != header_field(header, p)]
            if diff:
                raise CollmError(f"{path} was built with other settings ({', '.join(diff)} differ); "
                                 "use the same options to resume, or another --out")
            continue
        if not isinstance(d, dict):
            raise CollmError(f"{path}:{ln}: expected a JSON object")
        i = parse_problem(d, path, ln).i
        if i in done:
            raise CollmError(f"{path}:{ln}: problem {i} is in the file twice")
        done.add(i)
    return done


def _problem_line(prob, score, gen, greedy, task, keep_text: bool = False, backend=None, prompt=None) -> dict:
    """A problem's line; without a prompt score (an upstream without prompt
    log-probs) the prompt's tokens come from the greedy request's usage, the
    question's are estimated as live serving estimates them, and the
    per-token signals are empty."""
    def sample(c):
        ok = task.grade(c.answer, prob.gold)
        d = {"a": c.answer, "ok": bool(ok), "n": int(c.tokens), "lp": round(float(c.logprob), 3)}
        if c.finish_reason != "stop":
            d["f"] = c.finish_reason
        if keep_text:
            d["t"] = c.text
        return d

    extract_all(gen.completions, task)
    extract_all(greedy.completions, task)
    if score is None:
        pt, qt, ent, nll = int(greedy.usage.prompt_tokens), backend.count_prompt_tokens(prompt)[1], [], []
    else:
        s, e = score.question_span
        pt, qt, ent, nll = len(score.token_ids), e - s, score.q_entropy, score.q_nll
    return {"i": prob.id, "gold": prob.gold, "prompt_tokens": pt, "q_tokens": qt,
            "q_entropy": [round(float(x), 3) for x in ent], "q_nll": [round(float(x), 3) for x in nll],
            "greedy": sample(greedy.completions[0]), "samples": [sample(c) for c in gen.completions]}


def open_out(out: Path):
    """The bank file opened for appending (created if missing), or a clear error."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return open(out, "a+b")
    except OSError as e:
        raise CollmError(f"cannot write the bank {out}: {e.strerror or e}") from None


def build_bank(backend, problems, out: str | Path, header: dict, *, batch_size: int = 4, progress: bool = True,
               concurrency: int | None = None, scored: dict | None = None) -> dict:
    """Sample, grade and append every problem not in `out` yet; returns
    {"done": rows written now, "skipped": rows already there, "path": out}.
    concurrency: problems in flight at once, each line written as it finishes
    (an upstream: collm.bank.inflight); None: batch_size problems per call."""
    sp = header["sampling"]
    params = SamplingParams(temperature=sp["temperature"], top_p=sp["top_p"], top_k=sp.get("top_k") or 0,
                            max_tokens=sp["max_tokens"], seed=sp["seed"])
    task = get_task(problems[0].task) if problems else None
    keep = bool(header.get("texts"))
    out = Path(out)
    with open_out(out) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CollmError(f"{out} is being written by another process") from None
        done = resume(f, out, header)
        todo = [p for p in problems if p.id not in done]
        bar = Progress(len(problems), len(problems) - len(todo), progress)
        state = {"written": 0}
        try:
            if concurrency is not None:
                def line(p, s, g, gg, prompt):
                    return _problem_line(p, s, g, gg, task, keep_text=keep, backend=backend, prompt=prompt)

                state["written"] = build_in_flight(backend, todo, header, params, lambda d: _write_line(f, d), bar,
                                                   concurrency=concurrency, line=line, scored=scored)
            else:
                _batches(backend, todo, header, params, task, f, bar, batch_size, keep, state)
        finally:
            bar.close()
            written = state["written"]
    return {"path": str(out), "done": written, "skipped": len(problems) - len(todo), "total": len(problems)}


def _batches(backend, todo, header, params, task, f, bar, batch_size: int, keep: bool, state: dict) -> None:
    """batch_size problems per engine call: prompt scores, K samples, greedy decodes."""
    sp = header["sampling"]
    for b in range(0, len(todo), batch_size):
        batch = todo[b:b + batch_size]
        prompts = [Prompt(p.question, system=header["prompt"]["system"], id=p.id) for p in batch]
        scores = backend.score_prompt(prompts)
        t0 = time.perf_counter()
        gens = backend.generate(prompts, sp["k"], params)
        t1 = time.perf_counter()
        greedy = backend.generate(prompts, 1, params.as_greedy())
        t2 = time.perf_counter()
        # wall seconds per problem (its batch's time shared evenly): the report's live latency columns
        timing = {"samples_s": round((t1 - t0) / len(batch), 3), "greedy_s": round((t2 - t1) / len(batch), 3),
                  "batch": len(batch)}
        for p, s, g, gg in zip(batch, scores, gens, greedy):
            line = _problem_line(p, s, g, gg, task, keep_text=keep)
            _write_line(f, {**line, "timing": timing})
            state["written"] += 1
            bar.add(sp["k"] + 1, sum(c.tokens for c in g.completions) + gg.completions[0].tokens)
