"""Run the benchmarks and write each one's JSON to ``--out`` (``make bench``).

Each benchmark is its own script printing one JSON object on stdout; this runner only sequences
them (they would compete for the two cores if run together), keeps their output, and reports which
failed. Sizes are the ones the README quotes; pass ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[str, list[str]] = {
    # A tenth of M5 (the full 30,490 x 1,941 is `generate_scale.py` without arguments).
    "generate_scale": ["generate_scale.py", "--series", "3049", "--days", "1941"],
    "model_server": ["model_server.py"],
    "accuracy": ["accuracy.py", "--oracle"],
    "noise_floor": ["noise_floor.py"],
    "train_scale": ["train_scale.py", "--series", "3049", "--days", "1941"],
    "load": ["load.py"],
    "big_job": ["big_job.py"],
    "warehouse_ops": ["warehouse_ops.py"],
}
QUICK: dict[str, list[str]] = {
    "generate_scale": ["--series", "3049", "--days", "365"],
    "accuracy": ["--series", "120", "--days", "500"],
    "noise_floor": ["--seeds", "0", "--series", "250", "--days", "300"],
    "train_scale": ["--series", "300", "--days", "800"],
    "load": ["--duration", "20"],
    "big_job": ["--series", "1000", "--rows", "3000", "--jobs", "1"],
    "warehouse_ops": ["--events", "20"],
}


def _last_json(stdout: str) -> object | None:
    """The benchmark's JSON: the whole stdout, or its last line when it printed progress first."""
    text = stdout.strip()
    for candidate in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--only", nargs="*", help="names of benchmarks to run")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, cmd in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        script = HERE / cmd[0]
        if not script.exists():
            print(f"{name}: skipped ({script.name} does not exist)", file=sys.stderr)
            continue
        full = [sys.executable, str(script), *cmd[1:], *(QUICK.get(name, []) if args.quick else [])]
        started = time.perf_counter()
        proc = subprocess.run(full, capture_output=True, text=True)
        wall = time.perf_counter() - started
        result = _last_json(proc.stdout)
        if proc.returncode != 0 or result is None:
            failed.append(name)
            (args.out / f"{name}.err").write_text(proc.stderr[-20_000:])
            print(
                f"{name}: FAILED (exit {proc.returncode}); see {args.out / (name + '.err')}",
                file=sys.stderr,
            )
            continue
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: {wall:.0f}s -> {args.out / (name + '.json')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
