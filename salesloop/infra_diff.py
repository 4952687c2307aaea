"""Readable infrastructure diffs of synthesized stacks, for ops and for PR comments.

``salesloop infra diff dev prod`` compares two environments of the current tree;
``salesloop infra diff --ref origin/main`` compares each environment of the current tree with the
same environment synthesized from another git ref (checked out with ``git worktree`` in a temp
dir). The output is markdown, resource by resource: added, removed, and for changed resources
each attribute path with its old → new value. Exit code 1 when anything differs, 0 otherwise
(2 on errors), so CI can both post the text and branch on it.

Why not ``terraform plan``: a plan needs the cloud and the state; this diff needs neither and so
runs on every PR, offline, in seconds. Values a reviewer cannot read are unpacked first: JSON in
strings (table schemas) and base64 JSON (scheduler request bodies) are diffed field by field.
cdktn's ``//`` metadata (construct paths, which name the stack) is ignored; recorded policy skips
in ``//.checkov`` are kept, because adding one is a change a reviewer must see.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

CLOUD_ENVS = ("dev", "prod")
_MAX_VALUE = 120

app = typer.Typer(
    help="Resource-by-resource diff of the synthesized Terraform of two environments or two git refs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _infra() -> None:
    """Infrastructure of the cloud environments (synthesized with cdktn from stacks/)."""


class InfraDiffError(RuntimeError):
    """A tree could not be synthesized or a synthesized stack could not be read."""


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any


@dataclass
class StackDiff:
    title: str
    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, list[Change]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


# --- normalizing and diffing -----------------------------------------------------------------


def _strip_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "//":
                kept = {k: v for k, v in (item or {}).items() if k == "checkov"}
                if kept:
                    out[key] = kept
                continue
            out[key] = _strip_metadata(item)
        return out
    if isinstance(value, list):
        return [_strip_metadata(v) for v in value]
    return value


def addressed(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every block of a synthesized stack under a Terraform-style address."""
    out: dict[str, dict[str, Any]] = {}
    for rtype, by_name in (config.get("resource") or {}).items():
        for name, body in by_name.items():
            out[f"{rtype}.{name}"] = _strip_metadata(body)
    for rtype, by_name in (config.get("data") or {}).items():
        for name, body in by_name.items():
            out[f"data.{rtype}.{name}"] = _strip_metadata(body)
    for name, body in (config.get("output") or {}).items():
        out[f"output.{name}"] = _strip_metadata(body)
    for name, blocks in (config.get("provider") or {}).items():
        for i, body in enumerate(blocks if isinstance(blocks, list) else [blocks]):
            out[f"provider.{name}" + (f"[{i}]" if i else "")] = _strip_metadata(body)
    for kind, body in ((config.get("terraform") or {}).get("backend") or {}).items():
        out[f"terraform.backend.{kind}"] = _strip_metadata(body)
    required = (config.get("terraform") or {}).get("required_providers")
    if required:
        out["terraform.required_providers"] = required
    return out


def _unpack(key: str, value: Any) -> Any:
    """JSON inside a string, or base64 of JSON (request bodies), as a structure to diff into."""
    if not isinstance(value, str) or len(value) < 2:
        return value
    if value[0] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if key == "body":
        try:
            return json.loads(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            return value
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Attribute path → scalar (``a.b[0].c``)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(_unpack(str(key), item), path))
    elif isinstance(value, list):
        if not value and prefix:
            out[prefix] = []
        for i, item in enumerate(value):
            out.update(flatten(_unpack("", item), f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def diff_configs(old: dict[str, Any], new: dict[str, Any], title: str) -> StackDiff:
    a, b = addressed(old), addressed(new)
    result = StackDiff(title)
    for address in sorted(set(b) - set(a)):
        result.added[address] = b[address]
    for address in sorted(set(a) - set(b)):
        result.removed[address] = a[address]
    for address in sorted(set(a) & set(b)):
        fa, fb = flatten(a[address]), flatten(b[address])
        changes = [
            Change(path, fa.get(path, _ABSENT), fb.get(path, _ABSENT))
            for path in sorted(set(fa) | set(fb))
            if fa.get(path, _ABSENT) != fb.get(path, _ABSENT)
        ]
        if changes:
            result.changed[address] = changes
    return result


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


# --- rendering --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is _ABSENT:
        return "*(absent)*"
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", " ") + "`"


def _attribute_table(rows: Iterator[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(diffs: list[StackDiff], heading: str) -> str:
    lines = [f"## {heading}", ""]
    total = sum(len(d.added) + len(d.removed) + len(d.changed) for d in diffs)
    if total == 0:
        lines.append("No infrastructure change.")
        return "\n".join(lines) + "\n"
    for d in diffs:
        lines.append(
            f"### {d.title}: {len(d.added)} added, {len(d.removed)} removed, "
            f"{len(d.changed)} changed"
        )
        lines.append("")
        if d.empty:
            lines += ["No change.", ""]
            continue
        for label, blocks in (("Added", d.added), ("Removed", d.removed)):
            if not blocks:
                continue
            lines += [f"**{label}**", ""]
            for address, body in blocks.items():
                flat = flatten(body)
                lines += [
                    "<details>",
                    f"<summary>{'+' if label == 'Added' else '-'} <code>{address}</code></summary>",
                    "",
                    *_attribute_table(
                        ((f"`{p}`", _cell(v)) for p, v in flat.items()), ("attribute", "value")
                    ),
                    "",
                    "</details>",
                    "",
                ]
        if d.changed:
            lines += ["**Changed**", ""]
            for address, changes in d.changed.items():
                lines += [
                    "<details open>",
                    f"<summary>~ <code>{address}</code> ({len(changes)} attribute"
                    f"{'s' if len(changes) != 1 else ''})</summary>",
                    "",
                    *_attribute_table(
                        ((f"`{c.path}`", _cell(c.old), _cell(c.new)) for c in changes),
                        ("attribute", "old", "new"),
                    ),
                    "",
                    "</details>",
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"


# --- synthesizing trees -----------------------------------------------------------------------


def repo_root() -> Path:
    for parent in (Path.cwd(), *Path.cwd().parents):
        if (parent / "cdktf.json").is_file() and (parent / "stacks").is_dir():
            return parent
    raise InfraDiffError("run from inside the repository (no cdktf.json and stacks/ found)")


def synthesize_tree(tree: Path, outdir: Path) -> dict[str, dict[str, Any]]:
    """``python -m stacks`` in ``tree`` (its own code, settings and lockfile) → env → config.

    A tree that predates the stacks synthesizes to nothing: every resource then shows as added.
    """
    if not (tree / "stacks" / "__main__.py").is_file():
        return {env: {} for env in CLOUD_ENVS}
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "SALESLOOP_ENVIRONMENTS": str(tree / "environments"),
    }
    env.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(repo_root() / ".jsii-cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "stacks", "--outdir", str(outdir)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InfraDiffError(f"synthesis of {tree} failed:\n{proc.stderr.strip()[-3000:]}")
    return read_stacks(outdir)


def read_stacks(outdir: Path) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {}
    for env in CLOUD_ENVS:
        path = outdir / "stacks" / env / "cdk.tf.json"
        if path.is_file():
            configs[env] = json.loads(path.read_text())
    if not configs:
        raise InfraDiffError(f"no synthesized stack under {outdir}/stacks")
    return configs


def _git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InfraDiffError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def synthesize_ref(root: Path, ref: str, workdir: Path) -> dict[str, dict[str, Any]]:
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=root)
    tree = workdir / "tree"
    _git("worktree", "add", "--detach", str(tree), commit, cwd=root)
    try:
        return synthesize_tree(tree, workdir / "cdktf.out")
    finally:
        _git("worktree", "remove", "--force", str(tree), cwd=root)


# --- command ----------------------------------------------------------------------------------


@app.command("diff")
def diff(
    envs: Annotated[
        list[str] | None,
        typer.Argument(
            help="ENV_A ENV_B to compare two environments; with --ref, the environments to "
            "compare (default: all).",
            show_default=False,
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref", help="Compare the current tree with this git ref (e.g. origin/main)."
        ),
    ] = None,
    synthesized: Annotated[
        Path | None,
        typer.Option(
            "--synthesized",
            help="Use the stacks already synthesized in this cdktf.out instead of synthesizing "
            "the current tree.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the markdown to this file.")
    ] = None,
) -> None:
    """Print a markdown diff; exit 1 when something changed, 0 when nothing did."""
    envs = envs or []
    unknown = [e for e in envs if e not in CLOUD_ENVS]
    if unknown:
        raise typer.BadParameter(f"not a cloud environment: {', '.join(unknown)}")
    if ref is None and len(envs) != 2:
        raise typer.BadParameter("give two environments (diff dev prod) or --ref GITREF")
    try:
        with tempfile.TemporaryDirectory(prefix="salesloop-infra-diff-") as tmp:
            work = Path(tmp)
            root = repo_root()
            current = (
                read_stacks(synthesized)
                if synthesized is not None
                else synthesize_tree(root, work / "current")
            )
            if ref is None:
                a, b = envs
                diffs = [diff_configs(current[a], current[b], f"`{a}` → `{b}`")]
                heading = f"Infra diff: {a} → {b}"
            else:
                base = synthesize_ref(root, ref, work / "ref")
                diffs = [
                    diff_configs(base.get(env, {}), current.get(env, {}), f"`{env}`")
                    for env in (envs or list(CLOUD_ENVS))
                ]
                heading = f"Infra diff: {ref} → working tree"
    except InfraDiffError as exc:
        typer.echo(f"infra diff: {exc}", err=True)
        raise typer.Exit(2) from exc
    text = render_markdown(diffs, heading)
    typer.echo(text, nl=False)
    if output is not None:
        output.write_text(text)
    raise typer.Exit(0 if all(d.empty for d in diffs) else 1)


def main() -> None:  # pragma: no cover - console entry for `python -m salesloop.infra_diff`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["Change", "StackDiff", "app", "diff_configs", "flatten", "render_markdown"]
