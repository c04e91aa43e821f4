"""The `mae` command keeps the server's rules, prints strict JSON, and writes only where asked;
the README's commands refer to files that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_cli import build_parser, main
from mae_cli.models import parameter_counts
from mae_cli.reconstruct import json_safe
from mae_core.fields import MASK_RATIO
from mae_tools.testing import reconstruct_form, synthetic_photo, write_checkpoint

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


# ------------------------------------------------------------------ reconstruct
@pytest.mark.parametrize("ratio", ["0", "1", "-0.5", "nan", "inf"])
def test_reconstruct_refuses_the_ratios_the_server_refuses(tmp_path, capsys, ratio):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["reconstruct", "x.jpg", "-o", str(tmp_path / "o.png"), "--ratio", ratio])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert MASK_RATIO.problem(float(ratio)) in err  # the one rule, in its own words

    folder = tmp_path / "ckpts"
    write_checkpoint(folder, "mae-lab-default")
    png = tmp_path / "p.png"
    synthetic_photo(64, 64).save(png)
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        resp = client.post("/reconstruct", **reconstruct_form(png.read_bytes(), mask_ratio=ratio))
    assert resp.status_code == 422


def test_reconstruct_prints_strict_json(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path, "tiny")
    image = tmp_path / "in.png"
    synthetic_photo(64, 64).save(image)
    assert main(["reconstruct", str(image), "-o", str(tmp_path / "out.png"), "--checkpoint", str(ckpt),
                 "--seed", "3", "--device", "cpu"]) == 0
    out = strict_json(capsys.readouterr().out)
    assert out["seed"] == 3 and out["mask_ratio"] == 0.75 and (tmp_path / "out.png").is_file()


def test_non_finite_metrics_become_null_not_infinity():
    summary = {"masked_psnr": float("inf"), "masked_mse": 0.0, "nested": [float("nan"), 1.5]}
    text = json.dumps(json_safe(summary), allow_nan=False)
    assert strict_json(text) == {"masked_psnr": None, "masked_mse": 0.0, "nested": [None, 1.5]}


# ------------------------------------------------------------------ help texts
def test_bench_infer_has_a_description(capsys):
    text = help_text(capsys, "bench", "infer")
    assert "images/s" in text and "GFLOP/s" in text


def test_ablate_help_prints_a_plain_percent(capsys):
    text = help_text(capsys, "ablate")
    assert "75% random masking" in text and "%%" not in text


# ------------------------------------------------------------------ models, checkpoints
def test_models_lists_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"encoder\s+decoder\s+total", out)
    base = parameter_counts("mae_vit_base_patch16")
    assert 85.0e6 < base["encoder"] < 86.5e6  # ViT-B/16: 86M
    assert base["total"] == base["encoder"] + base["decoder"] and base["decoder"] > 20e6
    assert 300e6 < parameter_counts("mae_vit_large_patch16")["encoder"] < 305e6  # ViT-L: 304M
    assert "85.6M" in out


def test_checkpoints_list_includes_the_data_folder_and_the_embedded_default(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MAE_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("MAE_DATA_DIR", str(tmp_path / "data"))
    pulled = tmp_path / "pulled"
    write_checkpoint(tmp_path / "data" / "checkpoints", "job-abc123")
    write_checkpoint(pulled, "my-pull")
    monkeypatch.setenv("MAE_CHECKPOINT_DIR", str(pulled))
    assert main(["checkpoints", "list"]) == 0
    out = capsys.readouterr().out
    assert "my-pull" in out and "job-abc123" in out and "mae-lab-default" in out
    assert out.index("my-pull") < out.index("job-abc123") < out.index("mae-lab-default")
    assert main(["checkpoints", "list", "--dir", str(pulled)]) == 0
    only = capsys.readouterr().out
    assert "my-pull" in only and "job-abc123" not in only


def test_serve_data_dir_flag_moves_the_checkpoint_folder_like_the_env_does(tmp_path, monkeypatch):
    from mae_cli.serve import settings_from_args

    monkeypatch.delenv("MAE_CHECKPOINT_DIR", raising=False)
    s = settings_from_args(build_parser().parse_args(["serve", "--data-dir", str(tmp_path / "d")]))
    assert s.checkpoint_dir == tmp_path / "d" / "checkpoints" == s.data.checkpoints
    monkeypatch.setenv("MAE_CHECKPOINT_DIR", str(tmp_path / "c"))
    s = settings_from_args(build_parser().parse_args(["serve", "--data-dir", str(tmp_path / "d")]))
    assert s.checkpoint_dir == tmp_path / "c"


# ------------------------------------------------------------------ benchmarks write only where asked
def test_bench_quality_never_writes_into_the_shipped_results(tmp_path, capsys, monkeypatch):
    shipped = REPO / "bench-results" / "bench_quality.json"
    before = shipped.read_bytes() if shipped.exists() else None
    monkeypatch.delenv("MAE_BENCH_DIR", raising=False)
    monkeypatch.setenv("MAE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(REPO)  # the reported case: run from the checkout
    ckpt = write_checkpoint(tmp_path, "tiny")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        synthetic_photo(64, 64).save(images / f"{i}.png")
    assert main(["bench", "quality", str(images), "--checkpoint", str(ckpt), "--ratios", "0.75",
                 "--strategies", "random", "--device", "cpu"]) == 0
    assert (tmp_path / "var" / "bench-results" / "bench_quality.json").is_file()
    assert (shipped.read_bytes() if shipped.exists() else None) == before
    asked = tmp_path / "asked.json"
    assert main(["bench", "quality", str(images), "--checkpoint", str(ckpt), "--ratios", "0.75",
                 "--strategies", "random", "--device", "cpu", "--output", str(asked)]) == 0
    assert strict_json(asked.read_text())["rows"]


@pytest.mark.parametrize("command", [["bench", "train"], ["bench", "infer"], ["bench", "peer"],
                                     ["ablate", "mask_ratio", "--data", "d", "--heldout", "h"]])
def test_every_benchmark_defaults_outside_the_repository(command, tmp_path, monkeypatch):
    from mae_cli.bench import output_path

    monkeypatch.delenv("MAE_BENCH_DIR", raising=False)
    monkeypatch.delenv("MAE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(command)
    assert args.output is None
    if command[0] == "bench":
        assert output_path(args).parent == tmp_path / "var" / "bench-results"


# ------------------------------------------------------------------ the README runs as pasted
def test_readme_commands_name_files_that_exist():
    assert "fox.jpg" not in README
    for path in set(re.findall(r"static/samples/[\w.-]+\.jpg", README)):
        assert (REPO / path).is_file(), path
    for line in README.splitlines():
        if line.startswith("curl ") and "/reconstruct" in line:
            assert "| jq" in line or " -o " in line, line  # never 400 KB of base64 on a terminal


def test_readme_python_api_names_are_defined():
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    assigned = set(re.findall(r"^(\w+(?:, \w+)*) = ", block, re.M))
    names = {n.strip() for group in assigned for n in group.split(",")}
    assert {"img1", "img2", "r", "rec", "fast", "ready"} <= names
    assert block.index("img1, img2 =") < block.index("reconstruct_batch([img1, img2]")


def test_readme_starts_with_exactly_the_two_commands():
    lines = README.splitlines()
    start = lines.index("```bash")
    assert [ln.split("#")[0].strip() for ln in lines[start + 1:start + 3]] == \
        ["bash scripts/run-app.sh", "bash scripts/test.sh"]
    assert lines[start + 3] == "```"
    assert "source .venv/bin/activate" in README


def test_train_page_worker_command_is_runnable_as_shown(tmp_path, monkeypatch):
    from app.templating import mae_command

    with TestClient(create_app(Settings(checkpoint_dir=tmp_path, data_dir=tmp_path / "data dir"))) as client:
        html = client.get("/train").text
    shown = re.search(r'<code id="worker-command">([^<]+)</code>', html).group(1)
    import html as html_lib

    argv = shlex.split(html_lib.unescape(shown))
    assert argv[-2:] == ["--data-dir", str(tmp_path / "data dir")]
    assert shown.startswith(mae_command())
    worker_at = argv.index("worker")
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([*argv[:worker_at], "worker", "--help"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "--data-dir" in proc.stdout, proc.stderr[-500:]
    assert sys.executable in argv[0] or Path(argv[0]).name in ("mae", Path(sys.executable).name)
