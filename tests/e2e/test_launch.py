"""Multi-node training without a cluster: two torchrun "nodes" on one host (gloo, CPU), and
`mae train --launcher slurm|local` through submitit (its local executor runs the real job)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mae_cli import build_parser
from mae_core.runs import RunFolder
from support.train_helpers import TINY, make_images, read_losses

submitit = pytest.importorskip("submitit")
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("launch") / "img", count=16, size=40)


def _train_args(images: Path, out: Path, tmp: Path) -> list[str]:
    cfg = tmp / "tiny.json"
    cfg.write_text(json.dumps({"model_overrides": {**TINY, "patch_size": 8}}))
    return ["train", "--data", str(images), "--model", "mae_vit_tiny_patch16", "--img-size", "32",
            "--batch-size", "8", "--epochs", "2", "--lr", "2e-3", "--warmup-epochs", "1",
            "--device", "cpu", "--output-dir", str(out), "--log-every", "1",
            "--snapshot-every", "0", "--no-progress", "--no-norm-pix", "--config", str(cfg)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_nodes_on_one_host_train_one_run(images, tmp_path):
    """The README's two-node commands, both "nodes" on 127.0.0.1: 16 images over world size 2
    is 1 step of 8 per rank per epoch (one process alone would take 2), and only rank 0 writes."""
    run, port = tmp_path / "run", _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "mae_cli", *_train_args(images, run, tmp_path)],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    result = json.loads(outs[0][0].splitlines()[-1])
    assert result["status"] == "completed" and result["step"] == 2, result
    assert result["images_seen"] == 2 * 8 * 2  # steps x batch x world size
    assert outs[1][0].strip() == ""  # rank 1 trained but reports nothing
    assert RunFolder(run).export_path.is_file()
    assert RunFolder(run).read_summary()["step"] == 2


@pytest.mark.slow
def test_launcher_local_runs_the_submitit_job_with_two_tasks(images, tmp_path):
    """`--launcher local`: submitit's executor starts 2 tasks; they form one gloo group from
    submitit.JobEnvironment, rank 0 exports the model, and the CLI prints job id and log folder."""
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "mae_cli", *_train_args(images, run, tmp_path),
         "--launcher", "local", "--gpus-per-node", "0", "--tasks-per-node", "2",
         "--timeout", "10", "--job-dir", str(tmp_path / "jobs" / "%j")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    submitted, result = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert submitted["launcher"] == "local" and submitted["job_id"]
    log_folder = Path(submitted["log_folder"])
    assert log_folder == tmp_path / "jobs" / submitted["job_id"]
    assert sorted(p.name for p in log_folder.glob("*_log.out")) == [
        f"{submitted['job_id']}_{task}_log.out" for task in (0, 1)]
    assert result["world_size"] == 2 and result["rank"] == 0
    assert result["status"] == "completed" and result["step"] == 2, result
    assert Path(result["export"]) == RunFolder(run).export_path and Path(result["export"]).is_file()


@pytest.mark.slow
def test_requeued_job_resumes_from_the_latest_checkpoint(images, tmp_path, monkeypatch):
    """What submitit does on timeout/preemption: call the job's checkpoint() and submit what it
    returns. That job resumes the run (max_steps budgets each invocation) instead of restarting.
    submitit's DebugExecutor runs the jobs in this process (a JobEnvironment, no start-up)."""
    from mae_cli.launch import TrainJob
    from mae_cli.train import resolve_config

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT"):  # the job exports these: give them back afterwards
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(_train_args(images, tmp_path / "run", tmp_path)
                                     + ["--max-steps", "1"])
    job = TrainJob(resolve_config(args).to_dict())
    executor = submitit.DebugExecutor(folder=tmp_path / "jobs")
    first = executor.submit(job).result()
    assert (first["status"], first["step"]) == ("stopped", 1)
    requeued = job.checkpoint()
    assert requeued.function.resume and not job.resume
    second = executor.submit(requeued.function).result()
    assert (second["status"], second["step"]) == ("stopped", 2)  # from 1, not from 0
    assert [step for step, _ in read_losses(tmp_path / "run")] == [1, 2]


def test_slurm_flags_map_to_executor_parameters_and_sbatch_lines(tmp_path, monkeypatch):
    """No cluster needed: the flags become AutoExecutor parameters and #SBATCH lines.
    submitit only looks for an `srun` on PATH to accept cluster="slurm"; nothing runs it."""
    from mae_cli.launch import executor_parameters, make_executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    args = build_parser().parse_args(
        ["train", "--data", "x", "--launcher", "slurm", "--nodes", "4", "--ngpus", "8",
         "--partition", "learnfair", "--account", "vision", "--comment", "neurips",
         "--timeout", "90", "--job-dir", str(tmp_path / "%j")])
    assert executor_parameters(args) == {
        "name": "mae-train", "nodes": 4, "gpus_per_node": 8, "tasks_per_node": 8,
        "cpus_per_task": 10, "mem_gb": 320, "timeout_min": 90, "slurm_signal_delay_s": 120,
        "slurm_partition": "learnfair", "slurm_account": "vision", "slurm_comment": "neurips"}
    executor = make_executor(args)
    assert executor.cluster == "slurm"
    params = executor._executor.parameters
    assert params["nodes"] == 4 and params["ntasks_per_node"] == 8
    assert params["gpus_per_node"] == 8 and params["time"] == 90
    assert params["partition"] == "learnfair" and params["account"] == "vision"
    sbatch = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=90", "#SBATCH --partition=learnfair", "#SBATCH --account=vision",
                 "#SBATCH --comment=neurips", "#SBATCH --signal=USR2@120", "#SBATCH --mem=320GB"):
        assert line in sbatch, sbatch


def test_launcher_slurm_without_slurm_says_what_to_do(tmp_path, capsys, monkeypatch):
    from mae_cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    images = make_images(tmp_path / "img", count=8, size=40)
    assert main(["train", "--data", str(images), "--launcher", "slurm",
                 "--job-dir", str(tmp_path / "jobs")]) == 1
    err = capsys.readouterr().err
    assert "srun is not on PATH" in err and "--launcher local" in err


def test_launcher_flags_refuse_bad_values(capsys):
    for bad in (["--nodes", "0"], ["--timeout", "-5"], ["--ngpus", "two"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "--launcher", "slurm", *bad])
        assert bad[0] in capsys.readouterr().err


def test_readme_section_shows_the_tested_commands_and_every_launcher_flag():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Multi-node and SLURM\n", 1)[1].split("\n## ", 1)[0]
    assert "--nnodes 2 --nproc-per-node 8 --node-rank 0 --master-addr" in section
    assert "--nnodes 2 --nproc-per-node 8 --node-rank 1 --master-addr" in section
    assert "mae train --launcher slurm --nodes 4 --gpus-per-node 8 --partition gpu" in section
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if "--launcher" in a.option_strings).container
    for action in train._group_actions:
        assert any(f"`{opt}`" in section or f"{opt} " in section
                   for opt in action.option_strings), action.option_strings
