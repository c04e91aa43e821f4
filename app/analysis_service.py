"""The Analysis page's data, apart from HTTP: where result files live (from ``Settings``), loading
and validating them, and the figure specs and states the page and its API serve.

Run ids and snapshot steps from a request are only ever matched against directory listings; no
request string becomes part of a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from mae_core.runs import CURVE_POINTS, RunFolder, RunInfo, list_snapshots, read_json_result

from .figures import (
    ABLATION_FACTORS, ABLATION_TITLES, AblationResult, BenchInfer, BenchPeer, BenchTrain,
    ServeLatency, ablation_figure, bench_figure, infer_figure, infer_table, latency_figure,
    latency_table, machine_facts, paper_figures, peer_figure, peer_table, run_figures,
    throughput_figure, throughput_table,
)
from .paper_results import PaperResults
from .settings import Settings


HEAT_TABLES = (
    ("table3", "table3_imagenet_comparison"),
    ("table4", "table4_coco"),
    ("table5", "table5_ade20k"),
    ("table6", "table6_transfer_classification"),
    ("table7", "table7_pixels_vs_tokens"),
    ("table12", "table12_linear_probing_comparison"),
    ("table13", "table13_robustness"),
)


class BenchFile(NamedTuple):
    """A committed benchmark file: where it lives in the bench folder and what writes it."""

    filename: str
    model: type
    command: str


# name in /api/bench/{name} -> file; "train" (bench_train.json) has its own setting and route
BENCH_FILES: dict[str, BenchFile] = {
    "train_gpu": BenchFile("bench_train_gpu.json", BenchTrain,
                           "mae bench train --device cuda --output bench-results/"
                           "bench_train_gpu.json"),
    "infer": BenchFile("bench_infer.json", BenchInfer, "mae bench infer"),
    "infer_gpu": BenchFile("bench_infer_gpu.json", BenchInfer,
                           "mae bench infer --device cuda --output bench-results/"
                           "bench_infer_gpu.json"),
    "peer": BenchFile("bench_peer.json", BenchPeer, "mae bench peer"),
    "peer_gpu": BenchFile("bench_peer_gpu.json", BenchPeer,
                          "mae bench peer --device cuda --output bench-results/bench_peer_gpu.json"),
    "serve_latency": BenchFile("serve_latency.json", ServeLatency, "python -m mae_tools.serve_bench"),
}


# -- where files live ------------------------------------------------------------------------

def runs_root(settings: Settings) -> Path:
    return settings.runs_dir


def bench_dir(settings: Settings) -> Path:
    return settings.bench_dir


def bench_train_file(settings: Settings) -> Path:
    return settings.bench_train_file or settings.bench_dir / "bench_train.json"


def ablations_dir(settings: Settings) -> Path:
    return settings.bench_dir / "ablations"


# -- loading "ours" result files ---------------------------------------------------------------

def _load_result(path: Path, model: type, command: str) -> tuple[Any, str | None]:
    """A result file validated by ``model``, or ``(None, reason)``; absent -> ``(None, None)``."""
    try:
        raw = read_json_result(path)
    except (OSError, ValueError) as exc:
        return None, f"{path.name} is not valid JSON: {exc}"
    if raw is None:
        return None, None
    try:
        return model.model_validate(raw), None
    except ValidationError as exc:
        return None, f"{path.name} does not match the `{command}` format: {exc}"


def load_bench(path: Path) -> tuple[BenchTrain | None, str | None]:
    """The benchmark file, or ``(None, reason)`` when it is absent or malformed."""
    return _load_result(path, BenchTrain, "mae bench train")


def load_bench_file(settings: Settings, name: str) -> tuple[Any, str | None]:
    """One of ``BENCH_FILES`` from the bench folder, or ``(None, reason)``."""
    spec = BENCH_FILES[name]
    return _load_result(bench_dir(settings) / spec.filename, spec.model, spec.command.split(" --")[0])


def load_ablation(folder: Path, factor: str) -> tuple[AblationResult | None, str | None]:
    path = folder / f"{factor}.json"
    result, error = _load_result(path, AblationResult, "mae ablate")
    if result is not None and result.factor != factor:
        return None, f"{path.name} holds factor {result.factor!r}, expected {factor!r}"
    return result, error


def snapshot_list(run: RunInfo) -> list[dict[str, Any]]:
    return [{"step": s.step, "url": f"/api/runs/{run.id}/snapshots/{s.step}"}
            for s in list_snapshots(run.path)]


def run_curves(run: RunInfo) -> tuple[list[dict[str, Any]], int | None]:
    """The run's figures from a downsampled curve (long runs), and its last logged step."""
    rows, note = RunFolder(run.path).curve(CURVE_POINTS)
    specs = run_figures(run.id, rows)
    if note:
        for spec in specs:
            spec["notes"].append(f"{note['rows']} metrics lines drawn as {note['kept']} points: "
                                 f"{note['rule']}; the CSV has every line.")
    return specs, rows[-1]["step"] if rows else None


def run_payload(run: RunInfo) -> dict[str, Any]:
    return {**run.to_dict(), "metrics_url": f"/api/runs/{run.id}/metrics",
            "snapshots_url": f"/api/runs/{run.id}/snapshots"}


def page_figures(settings: Settings, results: PaperResults,
                 run: RunInfo | None = None) -> dict[str, Any]:
    """Every plotly spec the page draws, keyed by figure id, plus the state of "ours" files."""
    bench, bench_error = load_bench(bench_train_file(settings))
    bench_gpu, bench_gpu_error = load_bench_file(settings, "train_gpu")
    figures = {f["id"]: f for f in paper_figures(results)}
    figures["bench"] = bench_figure(results, bench, bench_gpu)
    ablations: dict[str, dict[str, Any]] = {}
    folder = ablations_dir(settings)
    for factor in ABLATION_FACTORS:
        result, error = load_ablation(folder, factor)
        spec = ablation_figure(results, factor, result)
        figures[spec["id"]] = spec
        ablations[factor] = {"present": result is not None, "error": error,
                             "figure_id": spec["id"], "title": ABLATION_TITLES[factor],
                             "meta": result.meta if result else None}
    performance = performance_state(settings)
    for info in performance.values():
        for spec in info.pop("specs"):
            figures[spec["id"]] = spec
    if run is not None:
        for spec in run_curves(run)[0]:
            figures[spec["id"]] = spec
    gpu_file = BENCH_FILES["train_gpu"]
    return {"figures": figures, "bench": {"present": bench is not None, "error": bench_error,
                                          "meta": bench.meta if bench else None,
                                          "facts": machine_facts(bench.meta) if bench else [],
                                          "path": str(bench_train_file(settings))},
            "bench_gpu": {"present": bench_gpu is not None, "error": bench_gpu_error,
                          "meta": bench_gpu.meta if bench_gpu else None,
                          "facts": machine_facts(bench_gpu.meta) if bench_gpu else [],
                          "path": str(bench_dir(settings) / gpu_file.filename),
                          "command": gpu_file.command},
            "ablations": ablations, "performance": performance}


def performance_state(settings: Settings) -> dict[str, dict[str, Any]]:
    """The Performance section: per benchmark file, its state, machine facts, charts and tables.

    A file that is absent or malformed gets no chart, only ``error`` (malformed) and the
    ``command`` that writes it.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in ("infer", "infer_gpu", "peer", "peer_gpu", "serve_latency"):
        spec = BENCH_FILES[name]
        result, error = load_bench_file(settings, name)
        specs: list[dict[str, Any]] = []
        tables: list[dict[str, Any]] = []
        if isinstance(result, BenchInfer):
            specs = [infer_figure(result, f"perf-{name.replace('_', '-')}", name)]
            tables = [{"title": "All rows", "view": infer_table(result)}]
        elif isinstance(result, BenchPeer):
            specs = [peer_figure(result, f"perf-{name.replace('_', '-')}", name)]
            tables = [{"title": "All rows", "view": peer_table(result)}]
        elif isinstance(result, ServeLatency):
            throughput = throughput_figure(result)
            specs = [latency_figure(result)] + ([throughput] if throughput else [])
            tables = [{"title": "Latency", "view": latency_table(result)}]
            if result.throughput:
                tables.append({"title": "Throughput", "view": throughput_table(result)})
        meta = result.meta if result is not None else None
        out[name] = {"present": result is not None, "error": error,
                     "facts": machine_facts(meta) if meta else [],
                     "figure_ids": [f["id"] for f in specs], "specs": specs, "tables": tables,
                     "path": str(bench_dir(settings) / spec.filename), "command": spec.command,
                     "json_url": f"/api/bench/{name}"}
    return out
