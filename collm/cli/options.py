"""Options that several commands share, written once:

    add_model_args(p)      --model, --engine (the registered engines)
    add_sampling_args(p)   --temperature, --top-p, --top-k, --max-tokens, --seed
    add_allow_ragged(p)    --allow-ragged, for commands that read banks
    sampling_from_args(a)  the SamplingParams they say (collm.types: the one set of defaults)
    backend_from_args(a)   the backend they name
"""

from __future__ import annotations

from collm import backends
from collm.errors import CollmError
from collm.types import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, SamplingParams


def engines() -> list[str]:
    return list(backends.ENGINES)


def add_model_args(p, required: bool = False) -> None:
    p.add_argument("--model", required=required, default=None,
                   help="model name (see `collm models`), GGUF path or Hugging Face folder (default: best installed)")
    p.add_argument("--engine", choices=engines(), default=None, help="default: the preferred engine for the device")


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


def backend_from_args(args):
    """The embedded model --model/--engine name."""

    return backends.load_backend(args.model, args.engine)
