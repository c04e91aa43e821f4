"""The Dockerfile and docker-compose.yml, checked without a Docker engine: their commands exist in
the CLI, their paths match the data-folder layout the code uses, the health check path is served.
(test_e2e_worker.py runs the same two commands as plain processes.)"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest
import yaml

from mae_cli import build_parser
from mae_service.jobs import DataDir

REPO = Path(__file__).resolve().parents[2]
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def values(dockerfile, keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile if kw == keyword]


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def parse_duration(text: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", str(text)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# ------------------------------------------------------------------ compose
def test_web_and_worker_run_the_same_image(compose):
    services = compose["services"]
    assert {"web", "worker"} <= set(services)
    assert services["web"]["image"] == services["worker"]["image"]
    assert services["web"]["build"] == services["worker"]["build"]
    assert services["web"]["build"]["context"] == "."


@pytest.mark.parametrize("service, module", [("web", "serve"), ("worker", "worker"), ("worker-gpu", "worker")])
def test_service_commands_exist_in_the_cli(compose, service, module):
    command = compose["services"][service]["command"]
    args = build_parser().parse_args(command)
    assert args.func.__module__ == f"mae_cli.{module}"
    assert str(args.data_dir) == compose["services"][service]["environment"]["MAE_DATA_DIR"]


def test_volumes_are_shared_and_match_the_data_folder_layout(compose):
    services = compose["services"]
    named = set(compose["volumes"])
    data = DataDir(Path(services["web"]["environment"]["MAE_DATA_DIR"]))
    for name in ("web", "worker", "worker-gpu"):
        assert services[name]["volumes"] == services["web"]["volumes"]
    mounts = {}
    for spec in services["web"]["volumes"]:  # SOURCE:TARGET[:MODE]; SOURCE may be ${VAR:-default}
        source, target, mode = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(\w+))?", spec).groups()
        mounts[target] = (source, [mode] if mode else [])
    # the three folders web and worker share are named volumes on the layout's paths
    for path in (data.checkpoints, data.runs, data.jobs):
        source, mode = mounts[str(path)]
        assert source in named and mode == []
    assert data.store.parent == data.jobs
    # images: read-only, and where the data roots point
    roots = services["web"]["environment"]["MAE_DATA_ROOTS"].split(":")
    for root in roots:
        source, mode = mounts[root]
        assert mode == ["ro"] and source not in named


def test_restart_policies_and_a_grace_period_to_checkpoint(compose):
    services = compose["services"]
    for name in ("web", "worker", "worker-gpu"):
        assert services[name]["restart"] in RESTART_POLICIES
        assert services[name].get("init") is True  # signals reach `mae`; DataLoader children reaped
    for name in ("worker", "worker-gpu"):
        assert parse_duration(services[name]["stop_grace_period"]) >= 60
        lease = float(flag(services[name]["command"], "--lease"))
        assert lease < parse_duration(services[name]["stop_grace_period"])


def test_web_publishes_its_port_and_worker_has_no_http_health_check(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    port = flag(web["command"], "--port")
    assert any(str(p).endswith(f":{port}") for p in web["ports"])
    assert flag(web["command"], "--host") == "0.0.0.0"
    assert worker["healthcheck"] == {"disable": True}


def test_gpu_worker_is_optional_and_reserves_a_gpu(compose):
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("web", "worker"):
        assert "profiles" not in compose["services"][name]  # `docker compose up` starts both


# ------------------------------------------------------------------ Dockerfile
def test_base_image_and_torch_index_are_build_arguments(dockerfile):
    assert dockerfile[0][0] == "ARG" and dockerfile[0][1].startswith("BASE_IMAGE=python:3.11")
    assert values(dockerfile, "FROM") == ["${BASE_IMAGE}"]
    torch_arg = [a for a in values(dockerfile, "ARG") if a.startswith("TORCH_INDEX_URL=")]
    assert torch_arg and torch_arg[0].endswith("/whl/cpu")
    assert any("${TORCH_INDEX_URL}" in run and "torch" in run for run in values(dockerfile, "RUN"))


def test_runs_as_a_non_root_user_that_owns_the_data_folder(dockerfile):
    users = values(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")
    user_at = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    assert not any(kw == "RUN" for kw, _ in dockerfile[user_at:])
    env = " ".join(values(dockerfile, "ENV"))
    data_dir = re.search(r"MAE_DATA_DIR=(\S+)", env).group(1)
    assert any(f"chown -R {users[-1]}" in run and data_dir in run for run in values(dockerfile, "RUN"))


def test_entrypoint_runs_mae_and_both_commands(dockerfile, compose):
    assert values(dockerfile, "ENTRYPOINT") == ['["mae"]']
    default = shlex.split(values(dockerfile, "CMD")[-1].strip("[]").replace(",", " "))
    assert build_parser().parse_args(default).func.__module__ == "mae_cli.serve"


def test_health_check_path_is_served(dockerfile):
    from fastapi.testclient import TestClient

    from app import Settings, create_app

    check = values(dockerfile, "HEALTHCHECK")
    assert len(check) == 1
    path = re.search(r"https?://127\.0\.0\.1:[^/]+(/[\w/]+)", check[0]).group(1)
    assert path == "/api/health"
    response = TestClient(create_app(Settings())).get(path)  # no lifespan: no model is loaded
    assert response.status_code == 200 and response.json()["status"] == "ok"
    env = " ".join(values(dockerfile, "ENV"))
    assert "MAE_HOST=0.0.0.0" in env
    assert values(dockerfile, "EXPOSE") == [re.search(r"MAE_PORT=(\d+)", env).group(1)]


def test_copied_sources_exist_and_are_not_ignored(dockerfile):
    copied = []
    for rest in values(dockerfile, "COPY"):
        *sources, _dest = rest.split()
        copied += sources
    for source in copied:
        assert (REPO / source).exists(), source
        assert not dockerignored(source), source
    # everything the installed package needs at run time is in the image
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "mae_core", "mae_service", "mae_tools",
                   "mae_cli", "app", "templates", "static", "checkpoints"):
        assert needed in copied, needed


def test_installs_the_package_not_the_checkout_with_the_tested_versions(dockerfile):
    """A regular (wheel) install, as tests/e2e/test_packaging.py checks works from any folder;
    every pip install takes constraints.txt."""
    installs = [run for run in values(dockerfile, "RUN") if "pip install" in run]
    assert installs and all("-c constraints.txt" in run for run in installs)
    assert not any(re.search(r"\s(-e|--editable)\s", run) for run in installs)
    assert any('".[app,postgres]"' in run for run in installs)  # postgres: --profile cluster


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    for path in (".git", ".venv", "var", "runs", "data", "images", "test-artifacts", "mae_lab.egg-info"):
        assert dockerignored(path), path


# ------------------------------------------------------------------ --profile cluster
def test_cluster_profile_puts_web_and_workers_on_a_healthy_postgres(compose):
    services = compose["services"]
    cluster = {name for name, s in services.items() if "cluster" in s.get("profiles", [])}
    assert cluster == {"postgres", "web-cluster", "worker-cluster"}
    db = services["postgres"]
    assert any(v.split(":")[0] in compose["volumes"] and v.endswith("/var/lib/postgresql/data")
               for v in db["volumes"])
    assert "pg_isready" in db["healthcheck"]["test"]
    env = db["environment"]
    for name, module in (("web-cluster", "serve"), ("worker-cluster", "worker")):
        service = services[name]
        url = service["environment"]["MAE_JOBS_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert url.endswith("/" + env["POSTGRES_DB"]) and f"//{env['POSTGRES_USER']}:" in url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        args = build_parser().parse_args(service["command"])
        assert args.func.__module__ == f"mae_cli.{module}"
        assert str(args.data_dir) == service["environment"]["MAE_DATA_DIR"]
        # runs and checkpoints stay on the volumes the other services share
        assert service["volumes"] == services["web"]["volumes"]
        assert service["restart"] in RESTART_POLICIES and service.get("init") is True
    assert parse_duration(services["worker-cluster"]["stop_grace_period"]) >= 60
    assert build_parser().parse_args(["worker", "--jobs-url", "postgresql://x@h/db"]).jobs_url
    assert build_parser().parse_args(["serve", "--jobs-url", "postgresql://x@h/db"]).jobs_url


def test_web_port_is_published_on_loopback_by_default(compose):
    """Strangers on the network cannot reach a token-less server: the default publish address
    is 127.0.0.1 (``MAE_PUBLISH_ADDR`` opens it, with ``MAE_AUTH_TOKEN``)."""
    (published,) = compose["services"]["web"]["ports"]
    assert re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", str(published)) == "127.0.0.1:8000:8000"
    env = compose["services"]["web"]["environment"]
    assert {"MAE_AUTH_TOKEN", "MAE_ALLOWED_HOSTS"} <= set(env)
