"""The bank format: JSONL, one problem per line, plus an optional header.

Line fields (a superset of ../shared/banks):
    i              row of the dataset split
    gold           gold answer (number or string)
    prompt_tokens  tokens of the whole templated prompt
    q_tokens       tokens of the question itself
    q_entropy      per question token: entropy (nats) of the next-token
                   distribution at the position that predicts it
    q_nll          per question token: its negative log-likelihood (nats)
    greedy         {a, ok, n, lp}: answer (or null), correct, tokens, summed log-prob
    samples        K objects {a, ok, n, lp} (optionally f: finish reason,
                   t: the generated text, in banks built with --keep-text)

Header: the first line may be {"collm_bank": 1, "model": {...}, "dataset": ...,
...}; or it sits beside the bank as FILE.meta.json (the sidecar wins). A bank
with neither gets its header from KNOWN_BANKS when its sha256 is listed there
(the shared GSM8K bank is), else an empty one. docs/BANKS.md has the details.

Lines and headers are checked against collm.bank.schema; problems with
different sample counts, or a problem twice, are refused unless the caller
allows a ragged bank.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collm.answers import TASKS, get_task
from collm.answers.program import require_sandbox
from collm.bank.schema import BankSchemaError, validate_header, validate_problem
from collm.errors import CollmError
from collm.verifiers.arithmetic import slips as count_slips

HEADER_KEY = "collm_bank"
FORMAT_VERSION = 1

SHARED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

# Headers of published banks that carry none, keyed by the bank file's sha256
# (they are read-only: their settings are written down here instead).
KNOWN_BANKS: dict[str, dict] = {
    "a583f8034e9fd2ec6a24b77113aedbc1de2fdd8104ff40dd1a8591cc8671a80a": {
        HEADER_KEY: FORMAT_VERSION,
        "model": {"name": "Qwen2.5-Coder-0.5B-Instruct", "file": "GGUF Q4_K_M (491,400,064 bytes)",
                  "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                  "params": 494032768, "engine": "transformers 5.17 generate, bf16, NVIDIA H100"},
        "dataset": "gsm8k", "split": "test", "offset": 0, "limit": 640,
        "prompt": {"system": SHARED_SYSTEM, "template": "the model's chat template, generation prompt added"},
        "sampling": {"k": 32, "temperature": 0.8, "top_p": 1.0, "top_k": 50, "max_tokens": 400,
                     "note": "top_k 50: transformers generate()'s default, which applies when not set"},
        "extractor": "number in the last \\boxed{}, else the last number; correct within 1e-6 of the #### gold "
                     "(cut samples are graded too)",
        "date": None, "collm_version": None,
        "source": "built-in header (collm.bank.format.KNOWN_BANKS); see ../shared/banks/README.md",
    },
}


@dataclass
class BankSample:
    a: object  # answer (float / str) or None
    ok: bool
    n: int  # generated tokens
    lp: float  # summed log-prob
    f: str | None = None  # finish reason, when recorded
    t: str | None = None  # generated text, when kept (bank build --keep-text)


@dataclass
class BankProblem:
    i: int
    gold: object
    prompt_tokens: int
    q_tokens: int
    q_entropy: list[float]
    q_nll: list[float]
    greedy: BankSample
    samples: list[BankSample]
    extra: dict = field(default_factory=dict)


@dataclass
class Bank:
    path: str
    problems: list[BankProblem]
    header: dict = field(default_factory=dict)

    # ---- identity of the model behind it ----
    @property
    def model(self) -> dict:
        return self.header.get("model", {})

    @property
    def params(self) -> int:
        return int(self.model.get("params", 0))

    @property
    def model_key(self) -> str | None:
        """What identifies the model: its weights' sha256, else its name."""
        m = self.model
        return m.get("sha256") or m.get("name") or None

    @property
    def k(self) -> int:
        return min(len(p.samples) for p in self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def subset(self, idx) -> "Bank":
        return Bank(self.path, [self.problems[j] for j in idx], self.header)

    @property
    def has_texts(self) -> bool:
        return any(s.t is not None for p in self.problems for s in p.samples)

    def reextract(self, task) -> "Bank":
        """The same draws answered and graded again from their texts by `task`
        (e.g. get_task("gsm8k+program")); cut samples keep no answer. Needs a
        bank built with --keep-text."""
        from dataclasses import replace

        if not self.has_texts:
            raise CollmError(f"{self.path} holds no sample texts to extract answers from; "
                             "build it with `collm bank build --keep-text`")

        def again(s: BankSample, gold) -> BankSample:
            if s.t is None or s.f == "length":
                return s
            a = task.extract(s.t)
            return replace(s, a=a, ok=bool(task.grade(a, gold)) if a is not None else False)

        probs = [replace(p, greedy=again(p.greedy, p.gold), samples=[again(s, p.gold) for s in p.samples])
                 for p in self.problems]
        return Bank(self.path, probs, {**self.header, "extractor": f"{task.name} (re-extracted from the texts)"})

    @property
    def task_name(self) -> str:
        """The answer task its samples were graded with (from the header)."""
        ex = str(self.header.get("extractor") or "").split(" ")[0]
        base = ex[: -len("+program")] if ex.endswith("+program") else ex
        return ex if base in TASKS else str(self.header.get("dataset") or "gsm8k")

    def with_program_answers(self) -> "Bank":
        """Answered again where a sample's own Python prints a number (collm.answers.program)."""
        name = self.task_name
        if name.endswith("+program"):
            return self
        require_sandbox()  # refused here, not at the first sample with code
        return self.reextract(get_task(name + "+program"))

    # ---- dense arrays for fast replay ----
    def arrays(self, k: int | None = None) -> dict:
        """ok[P,K] bool, ans[P,K] int codes (-1 = no answer), ntok[P,K],
        lp[P,K], greedy_ok[P], greedy_ans[P] (codes shared with ans), greedy_n[P],
        prompt_tokens[P]; and, in a bank with texts, slips[P,K] and greedy_slips[P]:
        the arithmetic slips in each text (collm.verifiers.arithmetic; -1: no text)."""
        k = k or self.k
        P = len(self.problems)
        ok = np.zeros((P, k), bool)
        ans = np.full((P, k), -1, np.int64)
        ntok = np.zeros((P, k), np.int64)
        lp = np.zeros((P, k))
        g_ok = np.zeros(P, bool)
        g_ans = np.full(P, -1, np.int64)
        g_n = np.zeros(P, np.int64)
        texts = any(s.t is not None for p in self.problems for s in p.samples[:k])
        slips = np.full((P, k), -1, np.int64)
        g_slips = np.full(P, -1, np.int64)
        for r, p in enumerate(self.problems):
            codes: dict = {}
            for c, s in enumerate(p.samples[:k]):
                ok[r, c], ntok[r, c], lp[r, c] = s.ok, s.n, s.lp
                if s.a is not None:
                    ans[r, c] = codes.setdefault(_key(s.a), len(codes))
                if texts and s.t is not None:
                    slips[r, c] = count_slips(s.t)
            if texts and p.greedy.t is not None:
                g_slips[r] = count_slips(p.greedy.t)
            g_ok[r], g_n[r] = p.greedy.ok, p.greedy.n
            if p.greedy.a is not None:
                g_ans[r] = codes.setdefault(_key(p.greedy.a), len(codes))
        out = {
            "ok": ok, "ans": ans, "ntok": ntok, "lp": lp,
            "greedy_ok": g_ok, "greedy_ans": g_ans, "greedy_n": g_n,
            "prompt_tokens": np.array([p.prompt_tokens for p in self.problems]),
            "q_tokens": np.array([p.q_tokens for p in self.problems]),
        }
        if texts:
            out["slips"], out["greedy_slips"] = slips, g_slips
        return out


def _key(a) -> str:
    if isinstance(a, float) and a == int(a):
        return str(int(a))
    return str(a)


def _sample(d: dict) -> BankSample:
    """A sample from its checked line (collm.bank.schema)."""
    return BankSample(d.get("a"), d["ok"], d["n"], d["lp"], d.get("f"), d.get("t"))


REQUIRED = ("i", "gold", "prompt_tokens", "q_tokens", "q_entropy", "q_nll", "greedy", "samples")


def parse_problem(d: dict, path="<bank>", line=0) -> BankProblem:
    """One problem line, checked against the schema (collm.bank.schema);
    anything wrong is a CollmError naming `path:line` and the field."""
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise CollmError(f"{path}:{line}: missing field(s) {', '.join(missing)}")
    if not isinstance(d["samples"], list) or not d["samples"]:
        raise CollmError(f"{path}:{line}: 'samples' must be a non-empty list")
    try:
        v = validate_problem(d)
    except BankSchemaError as e:
        what = "sample" if e.where.startswith(("samples", "greedy")) else "problem"
        raise CollmError(f"{path}:{line}: malformed {what} ({e})") from None
    extra = {k: x for k, x in v.items() if k not in REQUIRED}
    return BankProblem(v["i"], v["gold"], v["prompt_tokens"], v["q_tokens"], v["q_entropy"], v["q_nll"],
                       _sample(v["greedy"]), [_sample(s) for s in v["samples"]], extra)


def _header(d, where: str) -> dict:
    """A header checked against the schema, or a CollmError naming `where`."""
    try:
        return validate_header(d)
    except BankSchemaError as e:
        raise CollmError(f"{where}: malformed header ({e})") from None


def header_field(header: dict, path: tuple):
    """A header field by its path, e.g. ("sampling", "top_k"); None if absent.
    Banks written before collm had top_k sampled from the whole vocabulary,
    so a missing top_k reads 0; banks written before headers said which
    signals they hold all had the prompt-side ones, so a missing
    signals.prompt reads true."""
    d = header
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    if d is None and path == ("signals", "prompt"):
        return True
    return 0 if d is None and path == ("sampling", "top_k") else d


def has_prompt_signals(header: dict) -> bool:
    """Whether a bank holds the prompt-side signals (prefix entropy, prompt NLL):
    false when its model's server gave no prompt log-probs (header signals.prompt)."""
    return bool(header_field(header, ("signals", "prompt")))


def encode_line(obj: dict) -> bytes:
    """One line of a bank file."""
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def problem_to_dict(p: BankProblem) -> dict:
    def s(x: BankSample):
        d = {"a": x.a, "ok": x.ok, "n": x.n, "lp": x.lp}
        if x.f is not None:
            d["f"] = x.f
        if x.t is not None:
            d["t"] = x.t
        return d

    return {"i": p.i, "gold": p.gold, "prompt_tokens": p.prompt_tokens, "q_tokens": p.q_tokens,
            "q_entropy": p.q_entropy, "q_nll": p.q_nll, "greedy": s(p.greedy),
            "samples": [s(x) for x in p.samples], **p.extra}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _SameShape:
    """Refuses, line by line, a problem seen before or one whose sample count
    differs from the first problem's: replays and joins read K draws from
    every problem, so a ragged bank would quietly count as a smaller one."""

    HINT = "--allow-ragged (load_bank(..., allow_ragged=True)) reads it anyway"

    def __init__(self, path):
        self.path, self.first, self.lines = path, None, {}

    def check(self, p: BankProblem, ln: int) -> None:
        if p.i in self.lines:
            raise CollmError(f"{self.path}:{ln}: problem {p.i} is in the bank twice (first on line {self.lines[p.i]}); "
                             f"{self.HINT}")
        self.lines[p.i] = ln
        if self.first is None:
            self.first = (len(p.samples), ln)
        elif len(p.samples) != self.first[0]:
            k, at = self.first
            raise CollmError(f"{self.path}:{ln}: problem {p.i} has {_samples(len(p.samples))} where the first problem "
                             f"(line {at}) has {k}; {self.HINT}, with K the smallest count")


def _samples(n: int) -> str:
    return f"{n} sample{'' if n == 1 else 's'}"


def load_bank(path: str | Path, allow_partial_last_line: bool = False, allow_ragged: bool = False) -> Bank:
    """The bank in `path`, every line and the header checked (collm.bank.schema).
    Problems with different sample counts, or a problem twice, are refused
    unless `allow_ragged`."""
    path = Path(path)
    if path.is_dir():
        raise CollmError(f"bank path is a directory, not a file: {path}")
    if not path.is_file():
        raise CollmError(f"bank file not found: {path}")
    header: dict = {}
    meta = path.with_name(path.name + ".meta.json")
    if meta.is_file():
        try:
            header = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise CollmError(f"{meta}: not valid JSON ({e})") from None
        header = _header(header, str(meta))
    problems = []
    shape = None if allow_ragged else _SameShape(path)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        lines = [x + b"\n" for x in lines]
    else:  # the last line has no newline: a write may have been cut
        lines = [x + b"\n" for x in lines[:-1]] + lines[-1:]
    for ln, raw in enumerate(lines, 1):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CollmError(f"{path}:{ln}: not UTF-8 text") from None
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as e:
            if allow_partial_last_line and ln == len(lines) and not raw.endswith("\n"):
                break  # a write cut by a crash: the builder resumes from here
            why = "truncated line" if ln == len(lines) and not raw.endswith("\n") else "not valid JSON"
            raise CollmError(f"{path}:{ln}: {why} ({e.msg})") from None
        if not isinstance(d, dict):
            raise CollmError(f"{path}:{ln}: expected a JSON object")
        if HEADER_KEY in d:
            header = header or _header(d, f"{path}:{ln}")
            continue
        problems.append(parse_problem(d, path, ln))
        if shape is not None:
            shape.check(problems[-1], ln)
    if not problems:
        raise CollmError(f"{path}: the bank holds no problems")
    if not header:
        header = dict(KNOWN_BANKS.get(file_sha256(path), {}))
    return Bank(str(path), problems, header)


def merge_banks(banks: list[Bank]) -> Bank:
    """One bank from several parts of the same model's bank (e.g. part1 +
    part2). Banks of different models, datasets or splits are refused, and
    so is a problem present twice."""
    if len(banks) == 1:
        return banks[0]
    keys = {b.model_key for b in banks}
    if len(keys) > 1:
        names = "; ".join(f"{b.path}: {b.model.get('name') or b.model_key or 'unknown model'}" for b in banks)
        raise CollmError(f"banks of different models cannot be evaluated together ({names})")
    for field_ in ("dataset", "split"):
        vals = {b.header.get(field_) for b in banks}
        if len(vals) > 1:
            raise CollmError(f"banks of different {field_}s cannot be evaluated together ({', '.join(map(str, vals))})")
    seen: dict[int, str] = {}
    problems = []
    for b in banks:
        for p in b.problems:
            if p.i in seen:
                raise CollmError(f"problem {p.i} is in both {seen[p.i]} and {b.path}")
            seen[p.i] = b.path
            problems.append(p)
    return Bank(" + ".join(b.path for b in banks), problems, dict(banks[0].header))
