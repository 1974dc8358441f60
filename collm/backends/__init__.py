"""Model engines behind one interface (collm.backends.base.Backend).

    torch     transformers on CUDA when present, else the CPU: batched, many
              prompts x n samples per forward pass (collm.backends.torch_engine)
    llamacpp  llama-cpp-python on the CPU, about 4x faster per stream than
              transformers on these quantized models; a prompt's n samples
              decode together in one llama.cpp batch (collm.backends.llamacpp_engine)

load_backend() picks the faster engine for the device unless told. Engines
are imported lazily: importing collm.backends costs nothing.
"""

from __future__ import annotations

import importlib.util

from collm.backends.base import Backend
from collm.errors import CollmError

ENGINES = ("torch", "llamacpp")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def pick_engine(device: str | None = None, kind: str = "gguf") -> str:
    """The faster engine for the device: torch on CUDA, llama.cpp on a CPU when installed."""
    if kind != "gguf":
        return "torch"  # llama.cpp reads GGUF files only
    if device is None:
        device = "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda"):
        return "torch"
    return "llamacpp" if llamacpp_available() else "torch"


def load_backend(model: str | None = None, engine: str | None = None, device: str | None = None, **kwargs) -> Backend:
    """Load a model (registry name, GGUF path or HF folder; None = the default
    model) on an engine ("torch", "llamacpp"; None = the fastest here)."""
    from collm.models import resolve

    if engine is not None and engine not in ENGINES:
        raise CollmError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    resolved = resolve(model)
    engine = engine or pick_engine(device, resolved.kind)
    if engine == "llamacpp":
        if resolved.kind != "gguf":
            raise CollmError(f"the llama.cpp engine needs a .gguf file, {resolved.path} is a Hugging Face folder: use --engine torch")
        if device is not None and device != "cpu":
            raise CollmError(f"the llama.cpp engine runs on the CPU only (asked for device {device!r}): use --engine torch")
        if not llamacpp_available():
            raise CollmError("llama-cpp-python is not installed: `pip install llama-cpp-python==0.3.36` (or use --engine torch)")
        from collm.backends.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(resolved, **kwargs)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise CollmError(f"the torch engine needs torch and transformers ({e.name} is missing): `pip install collm[torch]`") from e
    from collm.backends.torch_engine import TorchEngine

    return TorchEngine(resolved, device=device, **kwargs)


def find_stop(text: str, stop) -> tuple[int, str | None]:
    """(index, stop string) of the earliest stop string in text, or (-1, None)."""
    hits = [(i, s) for s, i in ((s, text.find(s)) for s in stop or () if s) if i >= 0]
    return min(hits, key=lambda h: h[0]) if hits else (-1, None)


def encode_prompt(template, prompt, tokenize, bos: int | None = None) -> tuple[list[int], tuple[int, int]]:
    """Token ids of a templated prompt and the span of the question's own tokens.

    The three pieces of ChatTemplate.split are tokenized separately and
    concatenated, so the span is exact. tokenize(text, special) -> ids; special
    is False for the question: a user's text never becomes control tokens.
    """
    before, question, after = template.split(prompt)
    head = ([bos] if bos is not None else []) + tokenize(before, True)
    q = tokenize(question, False)
    return head + q + tokenize(after, True), (len(head), len(head) + len(q))


__all__ = ["Backend", "ENGINES", "load_backend", "pick_engine", "find_stop", "encode_prompt"]
