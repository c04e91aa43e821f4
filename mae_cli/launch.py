"""``mae train --launcher slurm|local``: run the same training through submitit.

As the official repository's ``submitit_pretrain.py``: one task per GPU on each node, the
distributed environment taken from ``submitit.JobEnvironment``, and a ``checkpoint()`` hook
that requeues the job on timeout or preemption; the requeued job resumes exactly from the run
folder's latest checkpoint (the trainer checkpoints on the SIGTERM that ends the old one).
``local`` is submitit's LocalExecutor: the same job object on this machine (one node).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mae_core.errors import InvalidParameterError

LAUNCHERS = ("none", "slurm", "local")
DEFAULT_JOB_DIR = "runs/slurm/%j"  # submitit replaces %j by the job id


def add_launcher_arguments(p: argparse.ArgumentParser) -> None:
    """CLI-only options (not training fields): where and how big the job is."""
    g = p.add_argument_group("launcher (submitit; pip install 'mae-lab[slurm]')")
    g.add_argument("--launcher", choices=LAUNCHERS, default="none",
                   help="none: train in this process (or under torchrun); slurm: submit a SLURM "
                        "job; local: the same job through submitit's local executor")
    g.add_argument("--nodes", type=_positive, default=1, help="nodes to request (default 1)")
    g.add_argument("--gpus-per-node", "--ngpus", dest="gpus_per_node", type=_non_negative,
                   default=1, help="GPUs per node, one training process each (default 1; "
                                   "0: one CPU process per node)")
    g.add_argument("--tasks-per-node", type=_positive, default=None,
                   help="training processes per node (default: one per GPU, 1 without GPUs)")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--account", default=None, help="SLURM account")
    g.add_argument("--comment", default=None, help="SLURM comment")
    g.add_argument("--timeout", type=_positive, default=4320,
                   help="job time limit in minutes (default 4320 = 72 h)")
    g.add_argument("--cpus-per-task", type=_positive, default=10,
                   help="CPU cores per process (data loading; default 10)")
    g.add_argument("--mem-gb", type=_positive, default=None,
                   help="memory per node in GB (default 40 per GPU)")
    g.add_argument("--max-requeues", type=_non_negative, default=30,
                   help="how many times a timed-out job is requeued (default 30)")
    g.add_argument("--job-dir", "--slurm-job-dir", dest="job_dir", default=DEFAULT_JOB_DIR,
                   help="submitit's folder for the job's logs and pickles; %%j is the job id "
                        f"(default {DEFAULT_JOB_DIR.replace('%', '%%')}); the run folder defaults to JOB_DIR/run")
    g.add_argument("--wait", action="store_true",
                   help="wait for the job and print its result (always with --launcher local)")


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def executor_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` values for the launcher flags (one task per GPU)."""
    tasks = args.tasks_per_node or max(args.gpus_per_node, 1)
    params: dict[str, Any] = {
        "name": "mae-train", "nodes": args.nodes, "gpus_per_node": args.gpus_per_node,
        "tasks_per_node": tasks, "cpus_per_task": args.cpus_per_task,
        "mem_gb": args.mem_gb or 40 * tasks, "timeout_min": args.timeout,
        # SIGUSR2 two minutes before the limit: time for checkpoint() and the requeue
        "slurm_signal_delay_s": 120,
    }
    for flag in ("partition", "account", "comment"):
        if getattr(args, flag):
            params[f"slurm_{flag}"] = getattr(args, flag)
    return params


def make_executor(args: argparse.Namespace):
    try:
        import submitit
    except ModuleNotFoundError:
        raise InvalidParameterError(
            f"--launcher {args.launcher} needs submitit: pip install 'mae-lab[slurm]'") from None
    if args.launcher == "local" and args.nodes > 1:
        raise InvalidParameterError("--launcher local runs on this machine: use --nodes 1")
    if args.launcher == "slurm" and shutil.which("srun") is None:
        raise InvalidParameterError(
            "--launcher slurm: no SLURM here (srun is not on PATH); submit from a cluster's "
            "login node, or use --launcher local to run the same job on this machine")
    executor = submitit.AutoExecutor(folder=args.job_dir, cluster=args.launcher,
                                     slurm_max_num_timeout=args.max_requeues)
    executor.update_parameters(**executor_parameters(args))
    return executor


@dataclass
class TrainJob:
    """The submitit callable: one per task. Picklable (a config dict and a flag)."""

    config: dict[str, Any]
    resume: bool = False

    def __call__(self) -> dict[str, Any]:
        import submitit

        from mae_core.train import Trainer
        from mae_core.train.config import TrainConfig

        env = submitit.JobEnvironment()
        # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT: what mae_core.train.distributed reads
        # under torchrun. Devices stay visible: the trainer picks cuda:LOCAL_RANK itself.
        submitit.helpers.TorchDistributedEnvironment().export(
            set_cuda_visible_devices=False, overwrite=True)
        config = TrainConfig.from_dict(self.config)
        config = config.replace(output_dir=config.output_dir.replace("%j", str(env.job_id)))
        result = Trainer(config, resume=self.resume, progress=False).run()
        return {"rank": env.global_rank, "world_size": env.num_tasks,
                "run_dir": str(result.run_dir), "status": result.status, "step": result.step,
                "final_loss": result.final_loss,
                "export": str(result.export_path) if result.export_path else None}

    def checkpoint(self) -> Any:
        """Called by submitit on timeout/preemption: requeue a job that resumes the run."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.config, resume=True))


def submit(args: argparse.Namespace, config, resume: bool) -> int:
    """Submit ``config`` as a job; print its id and log folder (and its result with --wait)."""
    if not config.output_dir:
        config = config.replace(output_dir=str(Path(args.job_dir) / "run"))
    executor = make_executor(args)
    job = executor.submit(TrainJob(config.to_dict(), resume=resume))
    print(json.dumps({"launcher": args.launcher, "job_id": job.job_id,
                      "log_folder": str(job.paths.folder),
                      "run_dir": config.output_dir.replace("%j", str(job.job_id))}),
          flush=True)
    if args.launcher == "local" or args.wait:
        results = job.results()  # one per task; raises if the job failed
        main = next(r for r in results if r["rank"] == 0)
        print(json.dumps(main))
        return {"completed": 0, "stopped": 0, "interrupted": 143}[main["status"]]
    return 0
