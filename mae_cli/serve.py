"""``mae serve``: run the MAE Lab web app (reconstruct page + REST API) with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from mae_core.precision import PRECISIONS
from mae_core.train.cost import CostLimits

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the web app and REST API",
        description="Serve the MAE Lab web app: the reconstruct page at / and POST /reconstruct "
        "(OpenAPI docs at /docs). Settings come from MAE_* environment variables (MAE_HOST, "
        "MAE_PORT, MAE_CHECKPOINT_DIR, MAE_DEFAULT_MODEL, MAE_DEVICE, MAE_MAX_UPLOAD_BYTES, "
        "MAE_QUEUE_SIZE, MAE_BATCH_WINDOW_MS, MAE_SHUTDOWN_GRACE_S, ...); flags override them. "
        "SIGTERM drains: requests in flight finish, new ones get 503, then the process exits. "
        "The embedded default checkpoint ships inside the package and is always offered. "
        "Example: mae serve --port 8000 --data-dir var/",
    )
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1; "
                   "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="folder of checkpoints offered by id, besides the data folder's and the "
                   "embedded default (default: $MAE_CHECKPOINT_DIR, else var/checkpoints)")
    p.add_argument("--default-model", default=None,
                   help="checkpoint id loaded at start-up (default mae-lab-default)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fast (default: bf16 on GPUs and on CPUs with native bf16, else fp32), "
                   "auto (bf16 on GPUs only), bf16, or fp32 (exact)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder shared with `mae worker`: job store, runs, trained checkpoints "
                   "(default: $MAE_DATA_DIR, else var/ in the current directory)")
    p.add_argument("--jobs-url", default=None,
                   help="PostgreSQL job store shared with workers on other hosts "
                   "(default: $MAE_JOBS_URL, else the SQLite file in the data folder)")
    limits = p.add_argument_group("job-cost limits", "the most a training job may cost; past one, "
                                  "POST /api/jobs answers 422 naming it (see README, Limits and security)")
    for name, kind, what in JOB_LIMIT_FLAGS:
        limits.add_argument(f"--job-max-{name}", type=kind, default=None, metavar="N",
                            help=f"most {what} (default: $MAE_JOB_MAX_{name.upper()}, else "
                            f"{getattr(CostLimits, 'max_' + name):g})")
    p.set_defaults(func=run)


# (flag suffix, type, what it bounds): --job-max-<name> sets Settings.job_max_<name>
JOB_LIMIT_FLAGS = (("params", int, "model parameters"), ("tokens", int, "tokens (patches) per image"),
                   ("steps", int, "optimizer steps of a job's schedule"),
                   ("flops", float, "training FLOPs of a job (e.g. 1e18)"))


def settings_from_args(args: argparse.Namespace):
    """``Settings`` from the environment, with the flags that were given applied on top."""
    from app.settings import Settings

    checkpoint_dir = args.checkpoint_dir
    if checkpoint_dir is None and args.data_dir is not None and not os.environ.get("MAE_CHECKPOINT_DIR"):
        checkpoint_dir = args.data_dir / "checkpoints"  # as $MAE_DATA_DIR would make it
    overrides = {
        "host": args.host, "port": args.port, "checkpoint_dir": checkpoint_dir,
        "default_model": args.default_model, "device": args.device, "data_dir": args.data_dir,
        "precision": args.precision, "jobs_url": getattr(args, "jobs_url", None),
        **{f"job_max_{name}": getattr(args, f"job_max_{name}", None) for name, _, _ in JOB_LIMIT_FLAGS},
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def open_network_warning(settings) -> str | None:
    """What to shout at start-up when the server listens beyond loopback without a token."""
    from app.auth import is_loopback, read_tokens

    if is_loopback(settings.host) or read_tokens(settings.auth_token, settings.auth_token_file):
        return None
    return (f"mae serve listens on {settings.host} WITHOUT A TOKEN: anyone who can reach this port "
            "can run jobs, delete checkpoints and read run logs. Set MAE_AUTH_TOKEN (or "
            "MAE_AUTH_TOKEN_FILE) and MAE_ALLOWED_HOSTS; see README, Limits and security.")


def run(args: argparse.Namespace) -> int:
    from app import create_app
    from app.server import serve

    settings = settings_from_args(args)
    log.info("settings: %s", settings.model_dump(exclude={"auth_token"}))
    warning = open_network_warning(settings)
    if warning:
        log.warning("!" * 72)
        log.warning("%s", warning)
        log.warning("!" * 72)
    serve(create_app(settings), settings,
          log_level=logging.getLevelName(logging.getLogger().level).lower(), exit_process=True)
    return 0
