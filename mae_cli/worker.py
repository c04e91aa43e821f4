"""``mae worker``: run queued training jobs from the shared data folder, one at a time."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker", help="run training jobs queued from the web app or API",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Claim queued jobs from DATA_DIR/jobs/jobs.sqlite and run them, one at a time.\n"
            "Start as many workers as you like on one data folder: a job is never run by two.\n"
            "SIGTERM / Ctrl+C: checkpoint the running job, put it back in the queue, exit.\n"
            "A worker killed outright loses nothing either: after --lease seconds another\n"
            "worker claims the job and resumes it from its last checkpoint.\n\n"
            "example:\n"
            "  mae serve --data-dir var/ &   # the web app submits jobs at /train\n"
            "  mae worker --data-dir var/"
        ),
    )
    p.add_argument("--data-dir", type=Path, default=None,
                   help="shared data folder (job store, runs, trained checkpoints); default "
                        "$MAE_DATA_DIR, else var/ in the current directory")
    p.add_argument("--jobs-url", default=None,
                   help="PostgreSQL job store shared by workers on several hosts "
                        "(postgresql://user:password@host/db); default $MAE_JOBS_URL, else the "
                        "SQLite file in the data folder. Runs and checkpoints stay in --data-dir, "
                        "which must then be shared storage (NFS...)")
    p.add_argument("--poll-interval", type=float, default=2.0,
                   help="seconds between looks at an empty queue (default 2)")
    p.add_argument("--lease", type=float, default=30.0,
                   help="seconds a claim holds without a heartbeat; a killed worker's job is "
                        "resumed by another this long after it died (default 30)")
    p.add_argument("--gpus", type=int, default=None,
                   help="the most processes one job may run on here: claim only jobs asking for "
                        "at most this many gpus, and run a job of several through torchrun, one "
                        "process per GPU (default: the CUDA devices this host has, at least 1; "
                        "on a CPU-only host --gpus N runs such jobs as N gloo processes)")
    p.add_argument("--max-jobs", type=int, default=None, help="exit after running this many jobs")
    p.add_argument("--exit-when-idle", action="store_true", help="exit when the queue is empty")
    p.add_argument("--worker-id", default=None, help="name in the job store (default host-pid-random)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from mae_core.errors import InvalidParameterError
    from mae_service.jobs import Worker, default_data_dir

    if args.poll_interval <= 0 or args.lease <= 0:
        raise InvalidParameterError("--poll-interval and --lease must be positive")
    worker = Worker(args.data_dir or default_data_dir(), poll_interval=args.poll_interval,
                    lease_s=args.lease, worker_id=args.worker_id,
                    jobs_url=args.jobs_url or os.environ.get("MAE_JOBS_URL") or None,
                    gpus=args.gpus)

    def stop(signum, _frame):  # the trainer installs its own handlers while a job runs
        log.warning("signal %d: finishing up and exiting", signum)
        worker.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.run(max_jobs=args.max_jobs, exit_when_idle=args.exit_when_idle)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
