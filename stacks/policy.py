"""Policy gate: checkov on the synthesized stacks, with the stacks' own recorded skips applied.

``python -m stacks.policy [--outdir cdktf.out] [--no-synth] [ENV ...]`` synthesizes (unless told
not to), runs ``checkov --framework terraform_json`` once over every stack, and fails (exit 1)
when any check fails that the resource does not skip, when a skip has no reason, or when a skip
no longer matches a finding (a stale skip hides the next real one).

Why the skips are applied here: checkov reads ``#checkov:skip=ID:reason`` comments from HCL, but
its terraform_json framework passes no suppressions to its checks (bridgecrewio/checkov#4634; the
``//`` comment key is dropped by its parser), and JSON has no comments. So each accepted finding
is recorded on the resource (:func:`modules.context.checkov_skip`) as
``"//": {"checkov": ["checkov:skip=<ID>:<reason>"]}`` — the HCL comment's own syntax — and this
gate reclassifies matching findings as skipped, printing every reason in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks._jsii import REPO_ROOT

CLOUD_ENVS = ("dev", "prod")
_SKIP = re.compile(r"^checkov:skip=(?P<id>[A-Z0-9_]+):(?P<reason>.*)$")


class PolicyError(RuntimeError):
    """checkov could not run, or its output is not what this gate understands."""


@dataclass(frozen=True)
class Finding:
    env: str
    check_id: str
    check_name: str
    address: str
    reason: str | None = None  # the skip's reason when the finding is accepted


@dataclass
class Verdict:
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    stale: list[Finding] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    passed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.stale or self.malformed)


def declared_skips(config: dict[str, Any]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """address → {check id → reason} from the resources' ``//`` blocks; plus malformed entries."""
    skips: dict[str, dict[str, str]] = {}
    malformed: list[str] = []
    for rtype, resources in config.get("resource", {}).items():
        for name, body in resources.items():
            for entry in (body.get("//") or {}).get("checkov", []):
                m = _SKIP.match(entry)
                address = f"{rtype}.{name}"
                if m is None or not m.group("reason").strip():
                    malformed.append(f"{address}: {entry!r} (expected checkov:skip=<ID>:<reason>)")
                    continue
                skips.setdefault(address, {})[m.group("id")] = m.group("reason").strip()
    return skips, malformed


def _addresses_by_name(config: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rtype, resources in config.get("resource", {}).items():
        for name in resources:
            out.setdefault(name, []).append(f"{rtype}.{name}")
    return out


def resolve_address(resource: str, by_name: dict[str, list[str]]) -> str:
    """checkov names graph findings ``type.name`` but attribute findings ``resource.name``."""
    if not resource.startswith("resource."):
        return resource
    name = resource.removeprefix("resource.")
    candidates = by_name.get(name, [])
    if len(candidates) != 1:
        raise PolicyError(f"cannot tell which resource {resource!r} is: {candidates}")
    return candidates[0]


def checkov_command() -> list[str]:
    beside = Path(sys.executable).parent / "checkov"
    exe = str(beside) if beside.exists() else shutil.which("checkov")
    if exe is None:
        raise PolicyError("checkov is not installed (uv sync --group infra)")
    return [exe]


def parse_reports(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per scanned directory, back to back (or one list)."""
    decoder = json.JSONDecoder()
    reports: list[dict[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"checkov printed no JSON report: {text[pos : pos + 300]!r}") from exc
        reports.extend(doc if isinstance(doc, list) else [doc])
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return reports


def run_checkov(stacks_dir: Path) -> list[dict[str, Any]]:
    """One checkov process over the directory of all stacks (its start-up dominates the run
    time; several ``--directory`` flags would make it report earlier directories again)."""
    cmd = [
        *checkov_command(),
        "--directory",
        str(stacks_dir),
        "--framework",
        "terraform_json",
        "--output",
        "json",
        "--compact",
        "--skip-download",  # no network: no platform guidelines or policy downloads
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in (0, 1):
        raise PolicyError(f"checkov exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    reports = parse_reports(proc.stdout)
    if not any(r.get("results") for r in reports):
        raise PolicyError("checkov found nothing to scan (is the stack synthesized?)")
    return reports


def evaluate(reports: list[dict[str, Any]], configs: dict[str, dict[str, Any]]) -> Verdict:
    verdict = Verdict()
    skips: dict[str, dict[str, dict[str, str]]] = {}
    names: dict[str, dict[str, list[str]]] = {}
    for env, config in configs.items():
        skips[env], malformed = declared_skips(config)
        verdict.malformed += [f"{env}: {m}" for m in malformed]
        names[env] = _addresses_by_name(config)
    used: set[tuple[str, str, str]] = set()

    def env_of(record: dict[str, Any]) -> str:
        # One checkov run over all stacks: the file path (stacks/<env>/cdk.tf.json) tells them apart.
        parts = Path(record.get("file_abs_path") or record["file_path"]).parts
        if len(parts) < 2:
            raise PolicyError(f"finding outside a stack: {record.get('file_abs_path')}")
        return parts[-2]

    for report in reports:
        results = report.get("results", {})
        verdict.passed += sum(1 for r in results.get("passed_checks", []) if env_of(r) in configs)
        for record in results.get("failed_checks", []):
            env = env_of(record)
            if env not in configs:
                continue
            address = resolve_address(record["resource"], names[env])
            reason = skips[env].get(address, {}).get(record["check_id"])
            finding = Finding(env, record["check_id"], record["check_name"], address, reason)
            if reason is None:
                verdict.failed.append(finding)
            else:
                used.add((env, address, record["check_id"]))
                verdict.skipped.append(finding)
    for env, by_address in skips.items():
        for address, checks in by_address.items():
            for check_id, reason in checks.items():
                if (env, address, check_id) not in used:
                    verdict.stale.append(Finding(env, check_id, "(no finding)", address, reason))
    return verdict


def render(verdict: Verdict) -> str:
    lines = [
        "## Policy (checkov, terraform_json)",
        "",
        f"passed {verdict.passed} · failed {len(verdict.failed)} · skipped {len(verdict.skipped)}"
        f" · stale skips {len(verdict.stale)} · malformed skips {len(verdict.malformed)}",
        "",
    ]

    def table(title: str, rows: list[Finding], last: str) -> None:
        if not rows:
            return
        lines.extend(
            [f"### {title}", "", f"| env | check | resource | {last} |", "|---|---|---|---|"]
        )
        for f in sorted(rows, key=lambda f: (f.env, f.address, f.check_id)):
            detail = f.check_name if last == "check" else (f.reason or "")
            lines.append(f"| {f.env} | {f.check_id} | `{f.address}` | {detail} |")
        lines.append("")

    table("Failed", verdict.failed, "check")
    table("Stale skips (no matching finding: remove them)", verdict.stale, "reason")
    table("Skipped, with the recorded reason", verdict.skipped, "reason")
    if verdict.malformed:
        lines.extend(["### Malformed skips", "", *[f"- {m}" for m in verdict.malformed], ""])
    return "\n".join(lines)


def check(outdir: Path, envs: tuple[str, ...] = CLOUD_ENVS) -> Verdict:
    stacks_dir = outdir / "stacks"
    configs = {}
    for env in envs:
        path = stacks_dir / env / "cdk.tf.json"
        if not path.is_file():
            raise PolicyError(f"{path} does not exist: synthesize first (python -m stacks)")
        configs[env] = json.loads(path.read_text())
    reports = run_checkov(stacks_dir)
    return evaluate(reports, configs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.policy", description=__doc__)
    parser.add_argument("envs", nargs="*", metavar="ENV")
    parser.add_argument("--outdir", type=Path, default=REPO_ROOT / "cdktf.out")
    parser.add_argument(
        "--no-synth", action="store_true", help="use the stacks already in --outdir"
    )
    parser.add_argument("--report", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    envs = tuple(args.envs) or CLOUD_ENVS
    if set(envs) - set(CLOUD_ENVS):
        parser.error(f"expected environments among {CLOUD_ENVS}")
    if not args.no_synth:
        from stacks.app import synth

        synth(args.outdir.resolve())
    try:
        verdict = check(args.outdir.resolve(), envs)
    except PolicyError as exc:
        print(f"policy: {exc}", file=sys.stderr)
        return 2
    text = render(verdict)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
