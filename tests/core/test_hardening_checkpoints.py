"""Unsafe checkpoints: pickled code never runs, request ids never become paths, broken files are
listed with their reason while the others keep serving."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from app import Settings, create_app
from mae_tools.testing import png_bytes, reconstruct_form, synthetic_photo, write_checkpoint

REPO = Path(__file__).resolve().parents[2]
MODEL = "mae-lab-default"

# ------------------------------------------------------------------------ static checks
# Calls that unpickle (or run TorchScript) and how each may be made safe, if at all.
UNSAFE_LOADERS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
    ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"),
    ("pandas", "read_pickle"), ("torch.jit", "load"), ("torch.hub", "load"),
    ("torch.hub", "load_state_dict_from_url"), ("marshal", "loads"), ("shelve", "open"),
}
TORCH_LOADERS = {("torch", "load"), ("torch.serialization", "load")}
SAFE_LOAD_MODULE = REPO / "mae_core" / "checkpoint" / "safe_load.py"


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Calls in ``source`` that may unpickle unsafely, resolving ``import x as y`` and
    ``from x import y`` aliases. torch.load must pass the literal ``weights_only=True`` and no
    ``**kwargs``; numpy.load must not pass ``allow_pickle=True``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if not name or "." not in name:
            continue
        module, func = name.rsplit(".", 1)
        where = f"{filename}:{node.lineno} {name}"
        keywords = {k.arg: k.value for k in node.keywords}
        if (module, func) in TORCH_LOADERS:
            wo = keywords.get("weights_only")
            if None in keywords or not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(where + " without weights_only=True")
        elif (module, func) in UNSAFE_LOADERS:
            found.append(where)
        elif (module, func) in (("numpy", "load"), ("np", "load")):
            ap = keywords.get("allow_pickle")
            if None in keywords or (ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False)):
                found.append(where + " with allow_pickle")
    return found


def product_python_files() -> list[Path]:
    packages = ("mae_core", "mae_service", "mae_tools", "mae_cli", "app", "scripts")
    return sorted(path for package in packages for path in REPO.joinpath(package).rglob("*.py"))


def test_no_unsafe_loading_anywhere_in_the_product():
    offenders = []
    for path in product_python_files():
        offenders += unsafe_calls(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not offenders, offenders


def test_shell_scripts_do_not_unpickle_either():
    pattern = re.compile(r"torch\.load\((?![^)]*weights_only=True)[^)]*\)|pickle\.loads?\(")
    offenders = [f"{p.name}: {m.group(0)}" for p in REPO.joinpath("scripts").glob("*.sh")
                 for m in pattern.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_torch_load_is_called_in_one_place_only():
    callers = [p for p in product_python_files()
               if any(c in p.read_text(encoding="utf-8") for c in ("torch.load(", "serialization.load("))]
    assert callers == [SAFE_LOAD_MODULE], callers


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load('x')",
    "import torch\ntorch.load('x', weights_only=False)",
    "import torch\nkw = {}\ntorch.load('x', weights_only=True, **kw)",
    "import torch as T\nT.load('x')",
    "from torch import load\nload('x')",
    "from torch import load as L\nL('x', map_location='cpu')",
    "import torch\ntorch.serialization.load('x')",
    "import torch\ntorch.jit.load('x')",
    "import pickle\npickle.loads(b'')",
    "from pickle import load\nload(open('x', 'rb'))",
    "import numpy as np\nnp.load('x', allow_pickle=True)",
    "import joblib\njoblib.load('x')",
])
def test_the_static_check_catches_each_unsafe_form(snippet):
    assert unsafe_calls(snippet), snippet


def test_the_static_check_accepts_the_safe_forms():
    assert not unsafe_calls("import torch\ntorch.load('x', map_location='cpu', weights_only=True)")
    assert not unsafe_calls("import numpy as np\nnp.load('x')\nnp.load('y', allow_pickle=False)")


# ------------------------------------------------------------------- pickled payloads
# Each payload, when unpickled, creates the file MARKER; placed in different parts of the file.
CASES = [("touch", "top"), ("exec", "namespace"), ("eval", "legacy"), ("system", "training")]

MAKE_EVIL = textwrap.dedent("""
    import argparse, json, os, pathlib, sys, torch
    folder = pathlib.Path(sys.argv[1])
    cases = json.loads(sys.argv[2])

    def evil(kind, marker):
        calls = {
            "touch": (pathlib.Path.touch, (pathlib.Path(marker),)),
            "exec": (exec, (f"open({marker!r}, 'w').close()",)),
            "eval": (eval, (f"open({marker!r}, 'w').close()",)),
            "system": (os.system, (f"touch {marker}",)),
        }
        class Evil:
            def __reduce__(self):
                return calls[kind]
        return Evil()

    def save(kind, place, path, marker):
        weights = {"w": torch.zeros(2)}
        payload = evil(kind, str(marker))
        if place == "namespace":  # argparse.Namespace is allow-listed; what it holds is not
            obj = {"model": weights, "args": argparse.Namespace(lr=payload)}
        elif place == "training":
            obj = {"model": weights, "step": 3, "optimizer": {"state": payload}}
        else:
            obj = {"model": weights, "x": payload}
        torch.save(obj, path, _use_new_zipfile_serialization=place != "legacy")

    for kind, place in cases:
        save(kind, place, folder / "models" / f"evil-{kind}-{place}.pth", folder / f"ran-{kind}-{place}")
    # control: the same kind of file, loaded unsafely, does run its payload
    for kind, place in cases:
        control, marker = folder / "control.pth", folder / f"control-{kind}-{place}"
        save(kind, place, control, marker)
        torch.load(control, weights_only=False)
        assert marker.exists(), (kind, place)
        marker.unlink()
        control.unlink()
    print("ARMED")
""")

ATTEMPT = textwrap.dedent("""
    import os, sys
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"  # set before torch is imported
    from pathlib import Path
    from mae_core import list_checkpoints, load_model
    from mae_core.checkpoint import load_state_dict
    from mae_core.checkpoint.safe_load import safe_torch_load
    from mae_core.errors import UnsafeCheckpointError
    from mae_core.train.state import load_training_state
    folder = Path(sys.argv[1])
    listing = {i.path.name: i for i in list_checkpoints(folder, confined=True)}
    for path in sorted(folder.glob("evil-*.pth")):
        refused = 0
        for attempt in (load_model, load_state_dict, safe_torch_load, load_training_state):
            try:
                attempt(path)
            except UnsafeCheckpointError:
                refused += 1
        assert "refused" in listing[path.name].error, listing[path.name]
        print("REFUSED", path.name, refused)
""")


@pytest.fixture(scope="module")
def evil_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evil")
    (folder / "models").mkdir()
    out = subprocess.run([sys.executable, "-c", MAKE_EVIL, str(folder), json.dumps(CASES)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ARMED" in out.stdout, out.stderr[-2000:]
    assert len(list((folder / "models").glob("evil-*.pth"))) == len(CASES)
    assert not list(folder.glob("ran-*"))
    return folder


def test_pickled_callables_are_refused_even_when_torch_is_told_to_unpickle(evil_folder):
    """Every entry point refuses every payload, in a process that had
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 from the start; no payload runs (the fixture showed each
    one does run when loaded unsafely)."""
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", ATTEMPT, str(evil_folder / "models")], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count(" 4\n") == len(CASES), out.stdout
    assert not list(evil_folder.glob("ran-*")), "a pickled payload ran"


def test_the_app_refuses_an_evil_checkpoint_and_keeps_serving(evil_folder, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    evil = folder / "evil.pth"
    evil.write_bytes((evil_folder / "models" / "evil-exec-namespace.pth").read_bytes())
    write_checkpoint(folder, MODEL)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert "refused" in models["evil"]["error"] and not models["evil"]["can_reconstruct"]
        resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model="evil"))
        assert resp.status_code == 422 and resp.json()["error"] == "checkpoint_unusable"
        ok = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), seed=1))
        assert ok.status_code == 200
    assert not list(evil_folder.glob("ran-*"))


def test_damaged_torch_files_are_a_checkpoint_error_never_anything_else(tmp_path):
    """Truncations and byte flips of a real checkpoint, both serialization formats: the loader
    either loads it or raises CheckpointError (IndexError, AssertionError, ... would be a 500)."""
    import random

    from mae_core.checkpoint.safe_load import safe_torch_load
    from mae_core.errors import CheckpointError

    rng = random.Random(0)
    target = tmp_path / "damaged.pth"
    for legacy in (False, True):
        clean = tmp_path / "clean.pth"
        torch.save({"model": {"w": torch.randn(40, 40), "i": torch.arange(9)}, "epoch": 3}, clean,
                   _use_new_zipfile_serialization=not legacy)
        data = clean.read_bytes()
        cases = [data[:n] for n in rng.sample(range(len(data)), 30)]
        for _ in range(120):
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            cases.append(bytes(flipped))
        for case in cases:
            target.write_bytes(case)
            try:
                safe_torch_load(target)
            except CheckpointError:
                pass


# ------------------------------------------------------------------------ model ids
@pytest.fixture
def served(tmp_path):
    """A checkpoint folder with the default, plus a valid checkpoint just outside it."""
    folder = tmp_path / "models"
    write_checkpoint(folder, MODEL)
    outside = write_checkpoint(tmp_path, "outside", seed=5)
    return folder, outside


TRAVERSALS = [
    "../outside", "..%2Foutside", "%2e%2e%2foutside", "..\\outside", "./../outside",
    f"{MODEL}/../../outside", "/etc/passwd", "....//outside", "%2Fetc%2Fpasswd",
    "..", ".", "", f"{MODEL}.safetensors", f"{MODEL}.json", f"./{MODEL}", f"{MODEL}\x00",
    "~/outside", "file:///etc/passwd",
]


def test_model_ids_never_become_paths(served):
    folder, outside = served
    ids = TRAVERSALS + [str(outside.with_suffix("")), str(outside)]
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        for model in ids:
            if model == "":
                continue  # an empty field means "the default"
            resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model=model))
            assert resp.status_code in (404, 422), (model, resp.status_code, resp.text[:200])
            assert resp.json()["error"] in ("unknown_model", "invalid_parameter"), model
        assert "outside" not in client.app.state.registry.loaded_ids()
        listed = [m["id"] for m in client.get("/api/models").json()["models"]]
        assert listed == [MODEL]


def test_a_symlink_out_of_the_folder_is_listed_broken_and_never_loaded(served):
    folder, outside = served
    (folder / "linked.safetensors").symlink_to(outside)
    (folder / "linked.json").symlink_to(outside.with_suffix(".json"))
    # a link that stays inside the folder is fine
    (folder / "alias.safetensors").symlink_to(folder / f"{MODEL}.safetensors")
    (folder / "alias.json").symlink_to(folder / f"{MODEL}.json")
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert "outside the checkpoint folder" in models["linked"]["error"]
        assert models["linked"]["can_reconstruct"] is False
        resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model="linked"))
        assert resp.status_code == 422 and resp.json()["error"] == "checkpoint_unusable"
        assert "linked" not in client.app.state.registry.loaded_ids()
        alias = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model="alias"))
        assert alias.status_code == 200


def test_a_card_linking_out_of_the_folder_is_refused(served):
    folder, outside = served
    path = write_checkpoint(folder, "cardlink")
    path.with_suffix(".json").unlink()
    path.with_suffix(".json").symlink_to(outside.with_suffix(".json"))
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert "outside the checkpoint folder" in models["cardlink"]["error"]


# ------------------------------------------------------------------- broken files
def _wrong_shape(folder: Path) -> None:
    path = write_checkpoint(folder, "wrong-shape", seed=2)
    tensors = load_file(str(path))
    tensors["blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _card_lies(folder: Path) -> None:
    path = write_checkpoint(folder, "card-lies", seed=3)
    card = json.loads(path.with_suffix(".json").read_text())
    card["model_config"]["embed_dim"] = 128
    path.with_suffix(".json").write_text(json.dumps(card))


def _missing_tensor(folder: Path) -> None:
    path = write_checkpoint(folder, "missing-tensor", seed=4)
    tensors = load_file(str(path))
    del tensors["blocks.1.mlp.fc2.weight"]
    save_file(tensors, str(path), metadata={"format": "pt"})


def _truncated(folder: Path, name: str, keep: float) -> None:
    good = write_checkpoint(folder, name, seed=6)
    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * keep)])


def _wrong_shape_pth(folder: Path, tiny_state: dict) -> None:
    state = dict(tiny_state)
    state["decoder_pred.weight"] = torch.zeros(3, 3)
    torch.save({"model": state}, folder / "wrong-shape-pth.pth")


def test_broken_checkpoints_are_listed_with_reasons_and_the_rest_keep_serving(tmp_path, tiny_model):
    folder = tmp_path / "models"
    write_checkpoint(folder, MODEL)
    _wrong_shape(folder)
    _card_lies(folder)
    _missing_tensor(folder)
    _truncated(folder, "truncated-header", 0.0005)
    _truncated(folder, "truncated-data", 0.9)
    _wrong_shape_pth(folder, tiny_model.state_dict())
    (folder / "garbage.pth").write_bytes(b"\x80\x04not a pickle at all")
    (folder / "empty.bin").write_bytes(b"")
    (folder / "bad-card.safetensors").write_bytes(
        (folder / f"{MODEL}.safetensors").read_bytes())
    (folder / "bad-card.json").write_text("{not json")
    (folder / "a-folder.safetensors").mkdir()
    reasons = {
        "wrong-shape": "shape", "card-lies": "shape", "missing-tensor": "missing",
        "truncated-header": "safetensors", "truncated-data": "safetensors",
        "wrong-shape-pth": "shape", "garbage.pth": "", "empty": "", "bad-card": "JSON",
    }
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert models[MODEL]["error"] is None and models[MODEL]["can_reconstruct"]
        assert "a-folder" not in models
        for name, word in reasons.items():
            name = name.removesuffix(".pth")
            entry = models[name]
            assert entry["error"] and not entry["can_reconstruct"], entry
            assert word in entry["error"], (name, entry["error"])
            resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model=name))
            assert resp.status_code == 422 and resp.json()["error"] == "checkpoint_unusable", name
        for _ in range(3):
            resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), seed=1))
            assert resp.status_code == 200
        assert client.get("/api/ready").status_code == 200
