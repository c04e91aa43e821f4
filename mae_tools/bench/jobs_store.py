"""Claim latency and throughput of the two job stores, side by side: SQLite and PostgreSQL.

``python -m mae_tools.bench.jobs_store --out RESULT.json [--workers 4] [--jobs 400]
[--postgres-url postgresql://...]``: queues ``--jobs`` jobs in each store, then ``--workers``
processes claim and finish them as fast as they can (a worker's loop without the training).
Prints a table and writes the JSON to ``--out``: jobs claimed per second over the whole run,
and the p50 / p95 / max time of one ``claim()`` call. Without ``--postgres-url`` it starts a
throwaway server from Debian's `postgresql` package (mae_tools.postgres_server).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mae_service.jobs.store import JobStore


def _worker(target: str, name: str, start: Any, out: Any) -> None:
    store = JobStore(target)
    store.counts()  # connected before the start line
    times: list[float] = []
    start.wait()
    while True:
        t0 = time.perf_counter()
        job = store.claim(name, lease_s=60)
        times.append(time.perf_counter() - t0)
        if job is None:
            break
        store.finish(job.id, name, "succeeded")
    out.put((times[:-1], time.perf_counter()))  # the last, empty claim is not a job


def measure(target: str, workers: int, jobs: int) -> dict[str, Any]:
    store = JobStore(target)
    for i in range(jobs):
        store.submit("pretrain", {"i": i}, {"epochs": 1}, job_id=f"bench-{i:05d}")
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(target, f"w{i}", start, out)) for i in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every worker connected and waiting
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    claims = [t for times, _ in results for t in times]
    wall = max(end for _, end in results) - t0
    assert len(claims) == jobs and store.counts()["succeeded"] == jobs, "a job was lost or doubled"
    ms = sorted(t * 1000 for t in claims)
    return {"workers": workers, "jobs": jobs, "wall_s": round(wall, 3),
            "jobs_per_s": round(jobs / wall, 1), "claim_p50_ms": round(statistics.median(ms), 2),
            "claim_p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2), "claim_max_ms": round(ms[-1], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the JSON result goes")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--postgres-url", default=None, help="an empty database to use "
                        "(default: a throwaway local server)")
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, Any]] = {}
    server = None
    with tempfile.TemporaryDirectory(prefix="mae-bench-jobs-") as tmp:
        rows["sqlite"] = measure(str(Path(tmp) / "jobs.sqlite"), args.workers, args.jobs)
        url = args.postgres_url
        if url is None:
            from mae_tools.postgres_server import PostgresServer

            server = PostgresServer(durable=True).start()
            url = server.new_database()
        try:
            rows["postgres"] = measure(url, args.workers, args.jobs)
        finally:
            if server is not None:
                server.stop()
    print(f"{'store':10} {'workers':>7} {'jobs':>5} {'jobs/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, r in rows.items():
        print(f"{name:10} {r['workers']:>7} {r['jobs']:>5} {r['jobs_per_s']:>8} {r['claim_p50_ms']:>8} "
              f"{r['claim_p95_ms']:>8} {r['claim_max_ms']:>8}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "jobs_store", "stores": rows,
                                    "postgres": "given URL" if args.postgres_url else "local, fsync on",
                                    "at": time.time()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
