"""Command-line options of the strategies, shared by `collm ask` and
`collm eval`:

    add_strategy_args(parser)            adds --strategy, --beam-width, --lookahead,
                                         --verifier, ... (not --n: the command owns it)
    name, kwargs = strategy_kwargs(args) what get_strategy(name, **kwargs) needs

An option that the chosen strategy does not use is an error (say, --beam-width
with majority), so that nobody believes it changed anything.
"""

from __future__ import annotations

from collm.errors import CollmError
from collm.strategies.base import STRATEGIES
from collm.verifiers import get_verifier
from collm.verifiers.base import AGGREGATIONS, MODES

SEARCH = ("beam", "lookahead", "dvts")
VERIFIED = ("weighted", "best") + SEARCH
FINAL_CHOICES = ("weighted", "best", "majority")

# option -> the strategies that use it
USED_BY = {
    "beam_width": SEARCH,
    "lookahead": ("lookahead",),
    "max_steps": SEARCH,
    "step_tokens": SEARCH,
    "revisions": ("revisions",),
    "seq_ratio": ("revisions",),
    "final": SEARCH + ("revisions",),
    "verifier": VERIFIED + ("revisions",),
    "verifier_mode": VERIFIED + ("revisions",),
    "aggregation": VERIFIED + ("revisions",),
    "verifier_model": VERIFIED + ("revisions",),
    "verifier_fallback": VERIFIED + ("revisions",),
    "verifier_timeout": VERIFIED + ("revisions",),
}


def add_strategy_args(p) -> None:
    g = p.add_argument_group("strategy")
    g.add_argument("--strategy", default=None, metavar="NAME",
                   help="majority, weighted, best, beam, lookahead, dvts, revisions, greedy; auto: the strategy "
                        "fitted for the question's predicted difficulty bin (a strategy policy)")
    g.add_argument("--beam-width", type=int, default=None, metavar="M",
                   help="beam/lookahead: keep N/M paths, M continuations each; dvts: N/M subtrees of width M (default 4)")
    g.add_argument("--lookahead", type=int, default=None, metavar="K", help="lookahead: greedy rollout steps (default 2)")
    g.add_argument("--max-steps", type=int, default=None, help="search: most steps per answer (default 40)")
    g.add_argument("--step-tokens", type=int, default=None, help="search: most tokens per step (default 256)")
    g.add_argument("--revisions", type=int, default=None, metavar="L", help="revisions: attempts per chain (N/L chains)")
    g.add_argument("--seq-ratio", type=float, default=None, metavar="R",
                   help="revisions: sequential/parallel ratio when --revisions is not given (default 1)")
    g.add_argument("--final", choices=FINAL_CHOICES, default=None,
                   help="how the final answer is picked among candidates (search: weighted; revisions: majority)")
    g.add_argument("--verifier", default=None, metavar="NAME",
                   help="self-certainty (default), probe:PATH, or a reward model's URL (vLLM /pooling or /classify)")
    g.add_argument("--verifier-mode", choices=MODES, default=None,
                   help="score whole answers or each step (default: process for search, outcome otherwise)")
    g.add_argument("--aggregation", choices=AGGREGATIONS, default=None, help="step scores -> one score (default last)")
    g.add_argument("--verifier-model", default=None, help="model name sent to a remote reward model")
    g.add_argument("--verifier-timeout", type=float, default=None, help="seconds to wait for a remote reward model (default 30)")
    g.add_argument("--verifier-fallback", default=None, metavar="NAME",
                   help="verifier to use when the remote one fails (default: none, fail with an error)")


def strategy_kwargs(args) -> tuple[str, dict]:
    name = getattr(args, "strategy", None) or "majority"
    if name not in STRATEGIES and name != "auto":
        raise CollmError(f"unknown strategy {name!r}; known: auto, {', '.join(sorted(STRATEGIES))}")
    given = {k: getattr(args, k, None) for k in USED_BY if getattr(args, k, None) is not None}
    if name == "auto":  # the strategy policy picks the strategy and its settings per difficulty bin
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise CollmError(f"{flags}: --strategy auto takes its settings from the strategy policy")
        return name, {}
    for k in given:
        if name not in USED_BY[k]:
            flag = "--" + k.replace("_", "-")
            raise CollmError(f"{flag} does not apply to the {name} strategy (it applies to {', '.join(USED_BY[k])})")
    for k in ("beam_width", "max_steps", "step_tokens", "revisions"):
        if k in given and given[k] < 1:
            raise CollmError(f"--{k.replace('_', '-')} must be at least 1 (got {given[k]})")
    if "lookahead" in given and given["lookahead"] < 1:
        raise CollmError(f"--lookahead must be at least 1 (got {given['lookahead']})")
    if "seq_ratio" in given and not given["seq_ratio"] > 0:
        raise CollmError(f"--seq-ratio must be > 0 (got {given['seq_ratio']})")
    if "verifier_timeout" in given and not given["verifier_timeout"] > 0:
        raise CollmError("--verifier-timeout must be > 0")

    kw: dict = {}
    for k in ("beam_width", "lookahead", "max_steps", "step_tokens", "revisions", "seq_ratio", "final"):
        if k in given:
            kw[k] = given[k]
    if name in VERIFIED or "verifier" in given:
        options = {}
        if "verifier_model" in given:
            options["model"] = given["verifier_model"]
        if "verifier_timeout" in given:
            options["timeout"] = given["verifier_timeout"]
        spec = given.get("verifier", "self-certainty")
        if options and not spec.startswith(("http://", "https://", "remote:")):
            raise CollmError("--verifier-model and --verifier-timeout apply to a remote verifier (a URL)")
        if "verifier_fallback" in given and not spec.startswith(("http://", "https://", "remote:")):
            raise CollmError("--verifier-fallback applies to a remote verifier (a URL)")
        mode = given.get("verifier_mode") or ("process" if name in SEARCH else "outcome")
        kw["verifier"] = get_verifier(spec, mode=mode, aggregation=given.get("aggregation"),
                                      fallback=given.get("verifier_fallback"), **options)
    elif name == "revisions" and given.get("final") in ("weighted", "best"):
        kw["verifier"] = get_verifier("self-certainty")
    return name, kw
