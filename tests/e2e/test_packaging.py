"""Install and run like a package: the wheel carries the pages, static files, paper results and
the embedded default checkpoint; nothing defaults into the source checkout; an installed wheel
serves every page and a reconstruction from an unrelated folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from mae_tools.testing import free_port

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CODE_PACKAGES = ("app", "mae_cli", "mae_core", "mae_service", "mae_tools")


# ------------------------------------------------------------------ the package list
def test_every_source_package_and_data_folder_is_in_the_wheel_list():
    """pyproject lists packages by hand (three are mapped folders): a new sub-package must be
    listed, or the wheel would silently lack it."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed, mapped = set(setuptools["packages"]), setuptools["package-dir"]
    on_disk = set()
    for top in CODE_PACKAGES:
        for folder in [REPO / top, *(REPO / top).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(folder.iterdir()):
                on_disk.add(".".join(folder.relative_to(REPO).parts))
    for package, source in mapped.items():
        for folder in [REPO / source, *(REPO / source).rglob("*")]:
            if folder.is_dir():
                on_disk.add(".".join([package, *folder.relative_to(REPO / source).parts]))
    assert listed == on_disk
    assert mapped == {"app.templates": "templates", "app.static": "static",
                      "mae_core.embedded_checkpoint": "checkpoints"}


def test_license_is_an_spdx_string_and_setuptools_can_read_it():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_imported_third_party_packages_are_declared():
    deps = " ".join(PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["app"])
    for name in ("torch", "torchvision", "timm", "safetensors", "fastapi-offline", "plotly"):
        assert re.search(rf"(^|\s|\"){re.escape(name)}[<>=~ ]", " " + deps), name
    dev = " ".join(PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert "ruff" in dev and "mypy" in dev


def test_constraints_pin_every_package_exactly():
    lines = [line for line in (REPO / "constraints.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[\w.\-]+", name) and re.fullmatch(r"[\w.+!]+", v) for name, v in pins.items())
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "mae-lab" not in pins and "mae_lab" not in pins
    for script in ("scripts/venv.sh",):
        assert "-c constraints.txt" in (REPO / script).read_text()
    for script in ("scripts/test.sh", "scripts/run-app.sh"):
        assert "source scripts/venv.sh" in (REPO / script).read_text()


# ------------------------------------------------------------------ default locations
def test_defaults_point_at_the_current_folder_not_the_checkout(monkeypatch, tmp_path):
    from mae_core import defaults
    from mae_core.runs import default_bench_dir, default_runs_dir
    from mae_service.jobs.paths import default_data_dir, default_data_roots

    for name in ("MAE_DATA_DIR", "MAE_CHECKPOINT_DIR", "MAE_RUNS_DIR", "MAE_BENCH_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    var = tmp_path / "var"
    assert default_data_dir() == defaults.data_dir() == var
    assert defaults.checkpoint_dir() == var / "checkpoints"
    assert default_runs_dir() == var / "runs" and default_bench_dir() == var / "bench-results"
    assert default_data_roots() == [tmp_path / "data"]
    # the embedded default is found wherever the checkpoint folder is
    assert defaults.default_checkpoint_path() == defaults.embedded_checkpoint_dir() / "mae-lab-default.safetensors"
    assert defaults.default_checkpoint_path().is_file()

    monkeypatch.setenv("MAE_DATA_DIR", str(tmp_path / "d"))
    assert defaults.checkpoint_dir() == tmp_path / "d" / "checkpoints"
    assert default_runs_dir() == tmp_path / "d" / "runs"
    monkeypatch.setenv("MAE_CHECKPOINT_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("MAE_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("MAE_BENCH_DIR", str(tmp_path / "b"))
    assert (defaults.checkpoint_dir(), default_runs_dir(), default_bench_dir()) == \
        (tmp_path / "c", tmp_path / "r", tmp_path / "b")


def test_no_library_module_builds_paths_from_its_own_location_except_resources():
    """Only the two resource finders may look beside their own files."""
    allowed = {"mae_core/defaults.py", "app/templating.py", "app/paper_results.py", "app/main.py",
               "mae_tools/testing.py"}
    offenders = []
    for top in CODE_PACKAGES:
        for path in (REPO / top).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            text = path.read_text()
            if rel not in allowed and re.search(r"__file__\)?\.resolve\(\)\.parents?|REPO_ROOT", text):
                offenders.append(rel)
    assert offenders == []


# ------------------------------------------------------------------ the wheel, installed
def source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, plus new files not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = source_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    # the build backend is the environment's setuptools: no download
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True)
    (whl,) = out.glob("mae_lab-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_pages_static_files_results_and_the_default_checkpoint(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"app/data/paper_results.json", "mae_core/embedded_checkpoint/mae-lab-default.safetensors",
                "mae_core/embedded_checkpoint/mae-lab-default.json"}
    for folder in ("templates", "static"):
        expected |= {f"app/{p.relative_to(REPO).as_posix()}" for p in (REPO / folder).rglob("*") if p.is_file()
                     and "__pycache__" not in p.parts}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("templates/", "static/", "checkpoints/", "tests/")) for n in names)


def fresh_venv(root: Path) -> Path:
    """A venv whose site-packages also sees this environment's (torch and the rest are reused,
    nothing downloaded); this environment's own mae-lab is not visible there: a path added by a
    .pth line does not run that folder's .pth files, where an editable install hooks in."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_base_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAE_") and k != "PYTHONPATH"}
    return {**env, **extra}


def get(url: str, **kw) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, **kw), timeout=60) as resp:
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "mae-lab-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
                 f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
def test_installed_wheel_serves_every_page_and_reconstructs_from_another_folder(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "--version"], check=True, capture_output=True,
                   env=clean_env())  # pip comes from the base environment through the .pth
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, env=clean_env())
    mae = tmp_path / "venv" / "bin" / "mae"
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = clean_env()

    where = subprocess.run([str(python), "-c", "import app, mae_core; print(app.__file__, mae_core.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert str(REPO) not in where and str(tmp_path / "venv") in where, where

    listing = subprocess.run([str(mae), "checkpoints", "list"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, check=True).stdout
    assert "mae-lab-default" in listing

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(mae), "serve", "--port", str(port), "--device", "cpu"], cwd=elsewhere,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if get(base + "/api/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the installed server did not become ready"
            time.sleep(0.25)

        assets: set[str] = set()
        for page in ("/", "/analysis", "/train", "/docs", "/redoc", "/samples/licenses"):
            status, body, _ = get(base + page)
            assert status == 200, (page, body[:300])
            assets |= set(re.findall(r"""(?:src|href)=["'](/(?:static|vendor)/[^"'?]+)""", body.decode()))
        assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
        assert "/vendor/plotly.min.js" in assets
        for asset in sorted(assets):
            status, body, _ = get(base + asset)
            assert status == 200 and len(body) > 100, asset
        assert len(get(base + "/vendor/plotly.min.js")[1]) > 1_000_000

        models = json.loads(get(base + "/api/models")[1])
        default = next(m for m in models["models"] if m["id"] == "mae-lab-default")
        assert models["default_present"] is True and default["can_reconstruct"] is True

        sample = next((tmp_path / "venv").rglob("app/static/samples/butterfly.jpg"))
        body, ctype = multipart({"mask_ratio": "0.75", "seed": "2"}, "image", "butterfly.jpg",
                                sample.read_bytes())
        status, reply, _ = get(base + "/reconstruct", data=body, method="POST",
                               headers={"Content-Type": ctype})
        assert status == 200, reply[:300]
        result = json.loads(reply)
        assert result["model"] == "mae-lab-default" and set(result["panels"]) >= {"original", "reconstruction"}
        assert 5 < result["metrics"]["masked_psnr"] < 60

        # what it makes goes to the current folder's var/, never into the installed package
        assert json.loads(get(base + "/api/runs")[1])["runs_dir"] == str(elsewhere / "var" / "runs")
        assert f"--data-dir {elsewhere / 'var'}" in get(base + "/train")[1].decode()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
