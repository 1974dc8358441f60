"""What a bank line and a bank header must hold, checked by pydantic's
validator (pydantic-core, the engine under pydantic 2, used directly: it
imports in a fraction of pydantic's time, which matters for a file the test
suite and every bank command load).

Types are strict where a lenient reading would change a result: "ok" must be
a JSON boolean (the string "false" is not a wrong answer counted as right),
token counts non-negative integers, log-probs finite numbers. A failure is
raised as a `BankSchemaError` carrying where it is (e.g. "samples[3].ok") and
what is wrong; collm.bank.format turns it into a `path:LINE: ...` CollmError.
"""

from __future__ import annotations

import json

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

COUNT = cs.int_schema(strict=True, ge=0)
POSITIVE = cs.int_schema(strict=True, gt=0)
NUMBER = cs.float_schema(strict=True)
FINITE = cs.float_schema(strict=True, allow_inf_nan=False)
TEXT = cs.str_schema(strict=True)
BOOL = cs.bool_schema(strict=True)


def _scalar(nullable: bool):
    """A number or a string (or null when `nullable`), kept as it is; JSON
    booleans, lists and objects are refused."""
    schema = cs.union_schema([cs.int_schema(strict=True), cs.float_schema(strict=True), TEXT])
    what = "a number, a string or null" if nullable else "a number or a string"
    return cs.custom_error_schema(cs.nullable_schema(schema) if nullable else schema,
                                  custom_error_type="scalar", custom_error_message=f"must be {what}")


def _obj(extra: str, required: dict | None = None, optional: dict | None = None):
    """A JSON object with these fields; `extra` ("allow" or "ignore") says
    what happens to others."""
    fields = {k: cs.typed_dict_field(s, required=True) for k, s in (required or {}).items()}
    fields.update({k: cs.typed_dict_field(s, required=False) for k, s in (optional or {}).items()})
    return cs.typed_dict_schema(fields, extra_behavior=extra)


def _maybe(schema):
    return cs.nullable_schema(schema)


# one draw: answer (or null), correct, tokens, summed log-prob; finish reason and text when recorded
SAMPLE = _obj("ignore", required={"ok": BOOL, "n": COUNT, "lp": FINITE},
              optional={"a": _scalar(nullable=True), "f": _maybe(TEXT), "t": _maybe(TEXT)})

# a problem line; fields beyond these are kept as the problem's extras
PROBLEM = _obj("allow", required={
    "i": COUNT, "gold": _scalar(nullable=False), "prompt_tokens": COUNT, "q_tokens": COUNT,
    "q_entropy": cs.list_schema(NUMBER), "q_nll": cs.list_schema(NUMBER),
    "greedy": SAMPLE, "samples": cs.list_schema(SAMPLE, min_length=1)})

# the header fields collm reads (others are kept); the model's params 0 reads
# as unknown, as a missing one does
SEED = cs.int_schema(strict=True)
HEADER = _obj("allow", optional={
    "model": _obj("allow", optional={"name": _maybe(TEXT), "sha256": _maybe(TEXT), "params": COUNT}),
    "dataset": _maybe(TEXT), "split": _maybe(TEXT), "extractor": _maybe(TEXT), "texts": BOOL,
    "prompt": _obj("allow", optional={"system": _maybe(TEXT)}),
    "sampling": _obj("allow", optional={
        "k": POSITIVE, "temperature": NUMBER, "top_p": NUMBER, "top_k": COUNT, "max_tokens": POSITIVE,
        "seed": _maybe(cs.union_schema([SEED, cs.list_schema(SEED)]))}),
})

_PROBLEM = SchemaValidator(PROBLEM)
_HEADER = SchemaValidator(HEADER)


class BankSchemaError(ValueError):
    """A line or header that breaks the schema: `where` names the field
    (e.g. "samples[3].ok"), `what` says what is wrong."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}" if where else what)
        self.where, self.what = where, what


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("int", "list[int]"):  # the branch names of the seed's union
            out += f".{part}" if out else part
    return out


# pydantic's words for a wrong JSON type, in JSON's
PLAIN = {"dict_type": "must be a JSON object", "bool_type": "must be true or false", "list_type": "must be a list",
         "missing": "missing"}


def _json(x) -> str:
    """`x` as JSON spells it (true, "false", NaN), for error messages."""
    try:
        return json.dumps(x)
    except (TypeError, ValueError):
        return repr(x)


def _error(e: ValidationError) -> BankSchemaError:
    """The first thing wrong, in words, with the value found."""
    err = e.errors(include_url=False)[0]
    what = PLAIN.get(err["type"]) or (err["msg"][:1].lower() + err["msg"][1:])
    if err["type"] != "missing":
        shown = _json(err["input"])
        what += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    more = e.error_count() - 1
    if more:
        what += f"; and {more} more error{'s' if more > 1 else ''}"
    return BankSchemaError(_where(err["loc"]), what)


def validate_problem(d: dict) -> dict:
    """The line `d` checked (numbers as floats where floats are meant)."""
    try:
        return _PROBLEM.validate_python(d)
    except ValidationError as e:
        raise _error(e) from None


def validate_header(d) -> dict:
    """The header `d` checked; it is returned as it was."""
    if not isinstance(d, dict):
        raise BankSchemaError("", "a header must be a JSON object")
    try:
        _HEADER.validate_python(d)
    except ValidationError as e:
        raise _error(e) from None
    return d
