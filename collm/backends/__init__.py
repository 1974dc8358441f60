"""Model engines behind one interface (collm.backends.base.Backend).

    torch     transformers on CUDA when present, else the CPU: batched, many
              prompts x n samples per forward pass (collm.backends.torch_engine)
    llamacpp  llama-cpp-python on the CPU, about 4x faster per stream than
              transformers on these quantized models; a call's samples decode
              together in one llama.cpp batch (collm.backends.llamacpp_engine)

Beside them, backends built directly rather than by model name: remote
(any OpenAI-compatible server, collm.backends.remote) and replay (a sample
bank, collm.backends.replay).

An engine is registered with register_backend(); the CLI's --engine choices
are the registered names, and load_backend() picks the preferred available
engine for the device unless told. Engines are imported lazily: importing
collm.backends costs nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from collm.backends.base import Backend, encode_prompt, find_stop
from collm.errors import CollmError
from collm.models import resolve


@dataclass(frozen=True)
class Engine:
    """A registered engine: load(resolved_model, device, **kw) -> Backend."""

    name: str
    load: Callable[..., Backend]
    available: Callable[[], str | None]  # None when usable, else why not (with the fix)
    formats: tuple[str, ...]  # model kinds it reads: "gguf", "hf"
    devices: tuple[str, ...]  # "cpu", "cuda"
    preferred_on: tuple[str, ...] = ()  # devices where it is the first choice


ENGINES: dict[str, Engine] = {}
FORMAT_NAMES = {"gguf": ".gguf file", "hf": "Hugging Face folder"}


def register_backend(name: str, load: Callable[..., Backend], *, available: Callable[[], str | None] = lambda: None,
                     formats=("gguf", "hf"), devices=("cpu", "cuda"), preferred_on=()) -> None:
    """Make an engine loadable by name (load_backend, every command's --engine)."""
    ENGINES[name] = Engine(name, load, available, tuple(formats), tuple(devices), tuple(preferred_on))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _device(device: str | None) -> str:
    return device or ("cuda" if cuda_available() else "cpu")


def pick_engine(device: str | None = None, kind: str = "gguf") -> str:
    """The preferred engine for the device and model kind among those usable here."""
    dev = _device(device).split(":")[0]
    fits = [e for e in ENGINES.values() if kind in e.formats and dev in e.devices and e.available() is None]
    if not fits:
        raise CollmError(f"no engine can run a {kind} model on {dev} here; "
                         + "; ".join(f"{e.name}: {e.available() or 'does not fit'}" for e in ENGINES.values()))
    return sorted(fits, key=lambda e: dev not in e.preferred_on)[0].name


def load_backend(model: str | None = None, engine: str | None = None, device: str | None = None, **kwargs) -> Backend:
    """Load a model (registry name, GGUF path or HF folder; None = the default
    model) on an engine (a registered name; None = the preferred one here)."""
    if engine is not None and engine not in ENGINES:
        raise CollmError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    resolved = resolve(model)
    name = engine or pick_engine(device, resolved.kind)
    e = ENGINES[name]
    if resolved.kind not in e.formats:
        what = " or ".join(FORMAT_NAMES.get(f, f) for f in e.formats)
        raise CollmError(f"the {name} engine needs a {what}, and {resolved.path} is a "
                         f"{FORMAT_NAMES.get(resolved.kind, resolved.kind)}; choose another --engine")
    if device is not None and device.split(":")[0] not in e.devices:
        raise CollmError(f"the {name} engine runs on {', '.join(e.devices)} only (asked for device {device!r})")
    why = e.available()
    if why is not None:
        raise CollmError(why)
    return e.load(resolved, device, **kwargs)


# ---- the two embedded engines ----

def _torch_missing() -> str | None:
    for mod in ("torch", "transformers"):
        if importlib.util.find_spec(mod) is None:
            return f"the torch engine needs torch and transformers ({mod} is missing): `pip install collm[torch]`"
    return None


def _llamacpp_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed: `pip install llama-cpp-python==0.3.36` (or use --engine torch)"
    return None


def _load_torch(resolved, device, **kw):
    from collm.backends.torch_engine import TorchEngine

    return TorchEngine(resolved, device=device, **kw)


def _load_llamacpp(resolved, device, **kw):
    from collm.backends.llamacpp_engine import LlamaCppEngine

    return LlamaCppEngine(resolved, **kw)


register_backend("torch", _load_torch, available=_torch_missing, formats=("gguf", "hf"), devices=("cpu", "cuda"),
                 preferred_on=("cuda",))
register_backend("llamacpp", _load_llamacpp, available=_llamacpp_missing, formats=("gguf",), devices=("cpu",),
                 preferred_on=("cpu",))

__all__ = ["Backend", "ENGINES", "Engine", "encode_prompt", "find_stop", "load_backend", "pick_engine", "register_backend"]
