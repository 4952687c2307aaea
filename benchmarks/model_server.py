"""Throughput and latency of the model server; prints one JSON object.

    .venv/bin/python benchmarks/model_server.py          # 5,000 series, batches of 2,000, 2 workers
    .venv/bin/python benchmarks/model_server.py --workers 1 --clients 2 --batch-size 1000

Trains a LightGBM version on generated data (``--train-series`` x ``--train-days``), registers and
deploys it in a temporary registry, starts ``python -m salesloop.serving`` as its own process, and
has ``--clients`` keep-alive HTTP clients post pre-encoded batches to the Vertex ``:predict`` path
for ``--rounds`` passes over the ``--series`` series. Each instance carries the model's
``min_history`` days, as the predictor sends them. Client and server share the machine's cores.

``series_per_s``: series forecast (7 days, 2 interval levels) per second of wall time over all
clients; ``p50_ms``/``p95_ms``: per-request latency; ``server_cpu_s_per_1k_series``: CPU seconds
the server process spent per 1,000 series (comparable when other jobs share the machine); ``in_process_predict_ms``: the model alone on
one batch in this process (no HTTP, no JSON), for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np


def _start_server(registry: Path, endpoint: str, workers: int) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable,
        "-m",
        "salesloop.serving",
        "--registry",
        str(registry),
        "--endpoint-id",
        endpoint,
    ]
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--workers", str(workers)],
        env={**os.environ, "SALESLOOP_LOG_LEVEL": "WARNING"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("listening on "):
            return proc, int(line.rsplit(":", 1)[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("model server did not start")


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process and its workers (Linux /proc): comparable under load."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server processes (--workers)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--train-series", type=int, default=300)
    parser.add_argument("--train-days", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from salesloop.config import Settings
    from salesloop.data.generate import generate_frame
    from salesloop.model import to_frame
    from salesloop.model.train import train_and_register
    from salesloop.predictor.codec import instances_from_frame
    from salesloop.registry import LocalRegistry
    from salesloop.serving import predict_instances

    endpoint = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        registry = LocalRegistry(Path(tmp) / "registry")
        t0 = time.perf_counter()
        train = generate_frame(
            args.train_series, args.train_days, start=date(2014, 1, 1), seed=args.seed
        )
        version = train_and_register(
            train, registry, Settings(project="salesloop-local"), version_note="benchmark"
        )
        train_s = time.perf_counter() - t0
        registry.deploy(endpoint, version)
        model = registry.load_model(version)
        need = model.metadata.min_history

        live = generate_frame(args.series, need + 7, start=date(2015, 6, 1), seed=args.seed + 1)
        frame = to_frame(live).groupby("unique_id", observed=True).tail(need)
        instances = instances_from_frame(frame)
        batches = [
            instances[i : i + args.batch_size] for i in range(0, len(instances), args.batch_size)
        ]
        bodies = [json.dumps({"instances": b}, separators=(",", ":")).encode() for b in batches]

        t = time.perf_counter()
        predict_instances(model, batches[0])
        in_process_ms = (time.perf_counter() - t) * 1000

        proc, port = _start_server(registry.root, endpoint, args.workers)
        time.sleep(2.0)  # every worker loads the model
        path = f"/v1/projects/p/locations/l/endpoints/{endpoint}:predict"
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        work = [(r, i) for r in range(args.rounds) for i in range(len(bodies))]
        cursor = iter(work)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while True:
                with lock:
                    item = next(cursor, None)
                if item is None:
                    break
                body = bodies[item[1]]
                start = time.perf_counter()
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.perf_counter() - start
                with lock:
                    if resp.status != 200:
                        errors.append(data[:200].decode(errors="replace"))
                    latencies.append(elapsed)
            conn.close()

        try:
            # one warm-up request, then the measured passes
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", path, body=bodies[0], headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()
            cpu0 = _cpu_seconds(proc.pid)
            wall0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.perf_counter() - wall0
            server_cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    lat = np.asarray(latencies) * 1000
    out: dict[str, Any] = {
        "series_per_s": round(args.rounds * len(instances) / wall, 1),
        "batch_size": args.batch_size,
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "requests": len(latencies),
        "errors": len(errors),
        "clients": args.clients,
        "workers": args.workers,
        "series": len(instances),
        "history_days": need,
        "request_bytes_mean": int(np.mean([len(b) for b in bodies])),
        "server_cpu_s_per_1k_series": round(1000 * server_cpu / (args.rounds * len(instances)), 4),
        "server_cpu_utilisation": round(server_cpu / wall, 2),
        "in_process_predict_ms": round(in_process_ms, 1),
        "train_s": round(train_s, 1),
        "train_shape": [args.train_series, args.train_days],
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
