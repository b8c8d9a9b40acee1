"""The kernel cache heals (issue 13): each fault in a fresh process, as a user meets it.

* numba's index/data files corrupted, truncated or empty: detected, removed, compiled again, with a warning;
* a cache directory that can't be created, or that other users can write: a private temporary directory for
  this process, with one warning; a `TRACEGRAD_CACHE_DIR` that is a file: an error naming the variable;
* `python -m tracegrad cache` tells where the cache is and how big; `--clear` empties it.
"""
import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """
import warnings
warnings.simplefilter("always")
import tracegrad as tg
f = tg.compile(lambda x: (x * 3.0).tanh().sum(), backend="numba", tiered=False)
for _ in range(3):
    r = f(tg.ones(4))
print("result", round(r.item(), 5))
"""


def _run(cache, code=PROGRAM):
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(cache), PYTHONPATH=REPO)
    env.pop("TRACEGRAD_BACKEND", None)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kernels")
    rc, out = _run(cache)
    assert rc == 0 and "result 3.98022" in out, out
    assert glob.glob(str(cache / "__pycache__" / "*.nbi")) and glob.glob(str(cache / "__pycache__" / "*.nbc"))
    return cache


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_numba_cache_files_are_rebuilt(warm_cache, damage):
    for f in glob.glob(str(warm_cache / "__pycache__" / "*.nb*")):
        with open(f, "rb") as fh:
            data = fh.read()
        with open(f, "wb") as fh:
            fh.write({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x80\x05junk" * 9}[damage])
    rc, out = _run(warm_cache)
    assert rc == 0 and "result 3.98022" in out, out
    assert "the kernel cache of tracegrad_kernels_" in out and "was unreadable" in out and "compiled again" in out
    rc, out = _run(warm_cache)  # healed: the next process loads it quietly
    assert rc == 0 and "result 3.98022" in out and "unreadable" not in out, out


def test_a_cache_directory_that_cannot_be_created_falls_back_to_a_private_temporary_one():
    rc, out = _run("/proc/tracegrad-kernels")
    assert rc == 0 and "result 3.98022" in out, out
    assert "tracegrad: not using the kernel cache '/proc/tracegrad-kernels' (TRACEGRAD_CACHE_DIR): it can't be " \
           "created" in out
    assert out.count("not using the kernel cache") == 1


def test_a_cache_directory_other_users_can_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    rc, out = _run(shared)
    assert rc == 0 and "result 3.98022" in out, out
    assert "other users can write to it (mode 777" in out
    assert not os.listdir(shared)


def test_a_cache_path_that_is_a_file_is_an_error_naming_the_variable(tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a directory")
    rc, out = _run(path)
    assert rc != 0
    assert f"NotADirectoryError: TRACEGRAD_CACHE_DIR='{path}' is a file, not a directory" in out


def test_the_cache_command_reports_and_clears(warm_cache):
    def cli(*args):
        env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(warm_cache), PYTHONPATH=REPO)
        return subprocess.run([sys.executable, "-m", "tracegrad", "cache", *args], env=env, capture_output=True,
                              text=True, check=True).stdout
    out = cli()
    assert out.startswith(f"kernel cache: {warm_cache}\n1 generated modules, ") and "(bound: 512 MB" in out
    out = cli("--clear")
    assert out.startswith("removed ") and "0 generated modules, 0 files, 0.0 MB" in out
    assert oct(os.stat(warm_cache).st_mode & 0o777) == "0o700"


def test_the_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    from tracegrad.runtime import native
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path))
    os.chmod(tmp_path, 0o700)
    (tmp_path / "__pycache__").mkdir()
    for k, name in enumerate(["old", "mid", "new"]):  # 3 modules of 3000 bytes, used in this order
        py = tmp_path / f"tracegrad_kernels_{name}.py"
        py.write_bytes(b"#" * 1000)
        for ext in ("segment_0-12.py311.nbi", "segment_0-12.py311.1.nbc"):
            (tmp_path / "__pycache__" / f"tracegrad_kernels_{name}.{ext}").write_bytes(b"x" * 1000)
        os.utime(py, (1_000_000 + k, 1_000_000 + k))
    (tmp_path / "unrelated.txt").write_bytes(b"y" * 10_000)  # not ours: never counted nor deleted
    assert native.prune_cache(limit=9000) == 0
    assert native.prune_cache(limit=6500) == 1  # the least recently used module goes, with numba's files
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert not [f for f in left if "_old" in f] and len([f for f in left if "_mid" in f]) == 3
    assert native.prune_cache(limit=0, keep="tracegrad_kernels_new") == 1
    assert sorted(p.name for p in tmp_path.glob("*.py")) == ["tracegrad_kernels_new.py"]
    assert (tmp_path / "unrelated.txt").exists()
    monkeypatch.setenv("TRACEGRAD_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="TRACEGRAD_CACHE_MB='lots': expected a number of megabytes"):
        native.cache_limit()
