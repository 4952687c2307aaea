"""The Cloud Function's source archive, built reproducibly at synth time.

Layout (what the Python runtime of Cloud Functions expects at the archive root)::

    main.py ...            the files of functions/<name>/
    salesloop/             the shared library (without __pycache__)
    environments/          the settings overlays, read by salesloop.config at cold start
    requirements.txt       the runtime dependencies pinned from uv.lock (no dev/training/infra)

Reproducible means byte-identical for identical inputs: entries sorted, fixed timestamps and
modes, fixed compression level. The archive's identity (:attr:`FunctionArchive.digest`) is a
hash of the entries' names and contents, not of the zip bytes, so that a different zlib build
on another machine cannot turn into a spurious redeploy; the bucket object is named after it,
so any change of code, settings or pins, and only such a change, redeploys the function.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


class ArchiveError(RuntimeError):
    """The function's sources or its pinned requirements cannot be assembled."""


@dataclass(frozen=True)
class FunctionArchive:
    path: Path
    digest: str  # sha256 over (name, content) of every entry, hex
    entries: tuple[str, ...]

    @property
    def short_digest(self) -> str:
        return self.digest[:16]


def _find_uv() -> str:
    """``uv run`` names itself in $UV; otherwise PATH, then pip's --user location (where the
    Makefile installs uv when the machine has none)."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(Path.home() / ".local/bin/uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ArchiveError("uv is needed to export requirements from uv.lock; install uv")


def runtime_requirements(repo_root: Path) -> str:
    """The runtime dependencies of the project, pinned exactly as uv.lock has them.

    ``uv export`` resolves the lockfile's universal markers; dev, training and infra groups and the
    ``local`` extra are left out, and so is the project itself (its code ships in the archive).
    """
    uv = _find_uv()
    cmd = [
        uv,
        "export",
        "--frozen",
        "--no-default-groups",
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements-txt",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise ArchiveError(f"uv export failed: {proc.stderr.strip()}")
    lines = sorted(
        line.strip()
        for line in proc.stdout.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return "\n".join(lines) + "\n"


def _files_under(root: Path, prefix: str) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix in _SKIP_SUFFIXES or name.startswith("."):
                continue
            rel = path.relative_to(root).as_posix()
            out.append((f"{prefix}{rel}", path))
    return out


def collect_entries(repo_root: Path, function: str) -> dict[str, bytes]:
    """Archive name → content, for the function folder, the library, settings, requirements."""
    function_dir = repo_root / "functions" / function
    if not (function_dir / "main.py").is_file():
        raise ArchiveError(f"{function_dir}/main.py does not exist (the function's entry point)")
    entries: dict[str, bytes] = {}
    for prefix, root in (
        ("", function_dir),
        ("salesloop/", repo_root / "salesloop"),
        ("environments/", repo_root / "environments"),
    ):
        for name, path in _files_under(root, prefix):
            if name in entries:
                raise ArchiveError(
                    f"{name} exists twice in the archive (function folder vs {root})"
                )
            entries[name] = path.read_bytes()
    if "requirements.txt" in entries:
        raise ArchiveError(
            f"{function_dir}/requirements.txt would shadow the pins exported from uv.lock"
        )
    entries["requirements.txt"] = runtime_requirements(repo_root).encode()
    return entries


def entries_digest(entries: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(entries):
        content = entries[name]
        h.update(name.encode() + b"\0" + str(len(content)).encode() + b"\0")
        h.update(content)
    return h.hexdigest()


def build_archive(repo_root: Path, function: str, out_dir: Path) -> FunctionArchive:
    """Write ``<out_dir>/<function>-<digest>.zip`` (atomically; identical inputs, identical file)."""
    entries = collect_entries(repo_root, function)
    digest = entries_digest(entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{function}-{digest[:16]}.zip"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(tmp, "w") as zf:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.external_attr = (0o100644 & 0xFFFF) << 16
                info.create_system = 3  # unix, so the mode bits above are honoured
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, entries[name], compresslevel=9)
        os.replace(tmp, path)
    return FunctionArchive(path=path, digest=digest, entries=tuple(sorted(entries)))
