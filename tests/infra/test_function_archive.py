"""The function's source archive: complete, runtime-only requirements, byte-for-byte reproducible."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from modules import function_archive as fa
from modules.function_archive import ArchiveError, build_archive, runtime_requirements

REPO = Path(__file__).resolve().parents[2]


def _fake_repo(root: Path) -> Path:
    (root / "functions" / "on_sale").mkdir(parents=True)
    (root / "functions" / "on_sale" / "main.py").write_text("def on_sale(event): ...\n")
    (root / "salesloop" / "__pycache__").mkdir(parents=True)
    (root / "salesloop" / "__init__.py").write_text("")
    (root / "salesloop" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "environments").mkdir()
    (root / "environments" / "base.yaml").write_text("project: p\n")
    return root


@pytest.fixture
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(fa, "runtime_requirements", lambda _root: "pandas==2.2.3\n")
    return _fake_repo(tmp_path / "repo")


def test_layout_is_what_cloud_functions_expects(fake_repo: Path, tmp_path: Path) -> None:
    archive = build_archive(fake_repo, "on_sale", tmp_path / "out")
    with zipfile.ZipFile(archive.path) as zf:
        names = zf.namelist()
        assert zf.read("requirements.txt") == b"pandas==2.2.3\n"
    assert names == sorted(names)
    assert names == [
        "environments/base.yaml",
        "main.py",
        "requirements.txt",
        "salesloop/__init__.py",
    ]


def test_same_inputs_same_bytes_and_any_change_a_new_digest(
    fake_repo: Path, tmp_path: Path
) -> None:
    a = build_archive(fake_repo, "on_sale", tmp_path / "a")
    b = build_archive(fake_repo, "on_sale", tmp_path / "b")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.digest == b.digest
    with zipfile.ZipFile(a.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    (fake_repo / "environments" / "base.yaml").write_text("project: q\n")
    c = build_archive(fake_repo, "on_sale", tmp_path / "c")
    assert c.digest != a.digest and c.path.name != a.path.name


def test_missing_entry_point_or_own_requirements_is_an_error(
    fake_repo: Path, tmp_path: Path
) -> None:
    (fake_repo / "functions" / "on_sale" / "requirements.txt").write_text("flask\n")
    with pytest.raises(ArchiveError, match="shadow"):
        build_archive(fake_repo, "on_sale", tmp_path / "out")
    with pytest.raises(ArchiveError, match=r"main\.py"):
        build_archive(fake_repo, "no_such_function", tmp_path / "out")


def test_requirements_are_the_runtime_pins_from_the_lockfile() -> None:
    reqs = runtime_requirements(REPO)
    names = {line.split("==")[0].lower() for line in reqs.splitlines()}
    assert {"functions-framework", "google-cloud-bigquery", "pydantic", "pyyaml"} <= names
    # Nothing from the dev, training or infra groups, nor the local-only extra, nor the project.
    assert not names & {"pytest", "mypy", "kfp", "cdktn", "checkov", "aiosmtpd", "salesloop"}
    assert all("==" in line for line in reqs.splitlines())
    assert reqs == runtime_requirements(REPO)


def test_the_real_function_archive(synth_dir: Path) -> None:
    zips = sorted((synth_dir / "stacks" / "prod" / "assets").rglob("*.zip"))
    assert len(zips) == 1
    with zipfile.ZipFile(zips[0]) as zf:
        names = set(zf.namelist())
    assert {"main.py", "requirements.txt", "salesloop/__init__.py", "salesloop/config.py"} <= names
    assert {"environments/base.yaml", "environments/prod.yaml"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
