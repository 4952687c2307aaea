"""``python -m stacks [--outdir DIR] [ENV ...]``: synthesize the cloud environments' stacks."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from stacks._jsii import REPO_ROOT

CLOUD_ENVS = ("dev", "prod")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks", description=__doc__)
    parser.add_argument("envs", nargs="*", metavar="ENV", help=f"default: {' '.join(CLOUD_ENVS)}")
    # The cdktn CLI tells the app where to write through CDKTF_OUTDIR.
    default_out = Path(os.environ.get("CDKTF_OUTDIR") or REPO_ROOT / "cdktf.out")
    parser.add_argument("--outdir", type=Path, default=default_out)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.envs) - set(CLOUD_ENVS))
    if unknown:
        parser.error(f"not a cloud environment: {', '.join(unknown)} (expected {CLOUD_ENVS})")
    from stacks.app import synth  # imports cdktn: slow, so after argument errors

    started = time.perf_counter()
    paths = synth(args.outdir.resolve(), envs=tuple(args.envs) or CLOUD_ENVS)
    for env, path in paths.items():
        print(f"{env}: {path}")
    print(
        f"synthesized {len(paths)} stack(s) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
