"""The analysis page and its data: the paper's results beside our own runs and benchmarks.

Pages: ``GET /analysis`` (one section per table/figure, linkable anchors).
REST:
    ``GET /api/results`` (every paper series), ``GET /api/results/{name}`` (``?format=csv``),
    ``GET /api/runs``, ``GET /api/runs/{id}``, ``GET /api/runs/{id}/metrics`` (``since_step``,
    ``format``), ``GET /api/runs/{id}/snapshots``, ``GET /api/runs/{id}/snapshots/{step}``,
    ``GET /api/runs/{id}/figures``, ``GET /api/analysis/figures`` (the plotly specs the page
    draws), ``GET /api/bench/train``, ``GET /api/bench/{name}`` (the other committed benchmark
    files), ``GET /api/ablations``, ``GET /api/ablations/{factor}``.

Files are found through the app settings (``runs_dir``, ``bench_dir``, ``bench_train_file``:
``MAE_RUNS_DIR``, ``MAE_BENCH_DIR``, ``MAE_BENCH_TRAIN_FILE``); what the routes serve is built by
``app.analysis_service``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from mae_core.runs import (
    CURVE_POINTS,
    RunFolder,
    RunInfo,
    find_run,
    list_runs,
    list_snapshots,
)

from ..analysis_service import (
    BENCH_FILES, HEAT_TABLES, ablations_dir, bench_dir, bench_train_file, load_ablation,
    load_bench, load_bench_file, page_figures, run_curves, run_payload, runs_root, snapshot_list,
)
from ..eval_results_view import evaluation_rows
from ..figures import ABLATION_FACTORS, ServeLatency, heat_table
from ..paper_results import paper_results
from ..schemas import ErrorResponse
from ..templating import templates

log = logging.getLogger(__name__)
Format = Literal["json", "csv"]

# Validate the data file when the app is built: a broken edit fails start-up and the tests.
PAPER = paper_results()

router = APIRouter(tags=["analysis"])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no such result, run, snapshot or file"}}
# Routes with ?format=csv: the schema lists text/csv beside JSON (schemathesis checks it).
CSV_OR_404 = {**NOT_FOUND, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                  "description": "JSON, or CSV with ?format=csv"}}

# -- helpers ----------------------------------------------------------------------------------

def _csv_response(rows: list[dict[str, Any]], filename: str,
                  columns: list[str] | None = None) -> Response:
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _get_run(request: Request, run_id: str) -> RunInfo:
    run = find_run(runs_root(request.app.state.settings), run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}; GET /api/runs lists the runs")
    return run


MaxPoints = Annotated[int, Query(ge=0, le=1_000_000, description=(
    "without since_step: at most about this many lines, downsampled (first, last, min and max "
    "loss per bucket of steps; `downsampled` in the reply says so); 0 = every line"))]


def _json_script(obj: Any) -> str:
    """JSON safe to embed in a ``<script type="application/json">`` element."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


# -- page -------------------------------------------------------------------------------------

@router.get("/analysis", response_class=HTMLResponse, include_in_schema=False,
            name="analysis_page")
def analysis_page(request: Request, run: str | None = None) -> HTMLResponse:
    results = PAPER
    runs = list_runs(runs_root(request.app.state.settings))
    selected = next((r for r in runs if r.id == run), runs[0] if runs else None)
    state = page_figures(request.app.state.settings, results, selected)
    tables = [{"id": anchor, "entry": results.get(name), "view": heat_table(results.get(name))}
              for anchor, name in HEAT_TABLES]
    run_state = None
    if selected is not None:
        snaps = snapshot_list(selected)
        last = selected.last_metrics or {}
        run_state = {"id": selected.id, "status": selected.status,
                     "last_step": last.get("step"), "snapshots": snaps,
                     "metrics_url": f"/api/runs/{selected.id}/metrics"}
    page_config = {"run": run_state, "runs": [{"id": r.id, "status": r.status} for r in runs]}
    return templates.TemplateResponse(request, "analysis.html", {
        "results": results,
        "figures": state["figures"],
        "figures_json": _json_script(state["figures"]),
        "page_config_json": _json_script(page_config),
        "bench": state["bench"],
        "bench_gpu": state["bench_gpu"],
        "performance": state["performance"],
        "ablations": state["ablations"],
        "tables": tables,
        "evaluations": evaluation_rows(request),  # our evaluation jobs (app/eval_results_view.py)
        "table2_view": heat_table(results.get("table2_wall_clock")),
        "runs": runs,
        "selected_run": selected,
        "run_state": run_state,
        "runs_dir": str(runs_root(request.app.state.settings)),
        "ablations_dir": str(ablations_dir(request.app.state.settings)),
        "bench_dir": str(bench_dir(request.app.state.settings)),
    })


# -- paper results ----------------------------------------------------------------------------

@router.get("/api/results", summary="Every paper table and figure series, with provenance")
def all_results() -> dict[str, Any]:
    return PAPER.model_dump(mode="json")


@router.get("/api/results/{name}", responses=CSV_OR_404,
            summary="One paper table or figure (?format=csv for CSV)")
def one_result(name: str, format: Format = "json") -> Any:
    entry = PAPER.results.get(name)
    if entry is None:
        raise HTTPException(404, f"no paper result {name!r}; known: {', '.join(PAPER.results)}")
    if format == "csv":
        return Response(entry.to_csv(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    body = entry.model_dump(mode="json")
    body["computed_rows"] = entry.computed_rows()
    return body


@router.get("/api/analysis/figures", responses=NOT_FOUND,
            summary="The plotly specs the analysis page draws")
def figure_specs(request: Request, run: str | None = None) -> dict[str, Any]:
    selected = None
    if run is not None:
        selected = _get_run(request, run)
    return page_figures(request.app.state.settings, PAPER, selected)


# -- runs ---------------------------------------------------------------------------------

@router.get("/api/runs", summary="Training runs found in the runs folder, newest first")
def runs_index(request: Request) -> dict[str, Any]:
    root = runs_root(request.app.state.settings)
    return {"runs_dir": str(root), "runs": [run_payload(r) for r in list_runs(root)]}


@router.get("/api/runs/{run_id}", responses=NOT_FOUND,
            summary="One run: config, summary, status, snapshots")
def run_detail(request: Request, run_id: str) -> dict[str, Any]:
    run = _get_run(request, run_id)
    return {**run_payload(run), "snapshots": snapshot_list(run)}


@router.get("/api/runs/{run_id}/metrics", responses=CSV_OR_404,
            summary="Metrics lines of a run (only steps after since_step when given)")
def run_metrics(request: Request, run_id: str,
                since_step: Annotated[int | None, Query(ge=-1)] = None,
                format: Format = "json", max_points: MaxPoints = CURVE_POINTS) -> Any:
    run = _get_run(request, run_id)
    folder = RunFolder(run.path)
    if format == "csv":
        rows = folder.read_metrics(since_step)
        cols = ["step", "epoch", "lr", "loss", "images_per_s", "data_wait_frac", "elapsed_s"]
        for row in rows:
            cols += [k for k in row if k not in cols]
        return _csv_response(rows, f"{run.id}-metrics.csv", cols)
    rows, note = folder.poll_metrics(since_step, max_points)
    return JSONResponse({"run": run.id, "status": run.status, "since_step": since_step,
                         "last_step": rows[-1]["step"] if rows else since_step,
                         "metrics": rows, "downsampled": note})


@router.get("/api/runs/{run_id}/snapshots", responses=NOT_FOUND,
            summary="Reconstruction snapshots of a run by step")
def run_snapshots(request: Request, run_id: str) -> dict[str, Any]:
    run = _get_run(request, run_id)
    return {"run": run.id, "snapshots": snapshot_list(run)}


@router.get("/api/runs/{run_id}/snapshots/{step}", responses=NOT_FOUND,
            summary="One snapshot image (PNG)",
            response_class=FileResponse)
def run_snapshot(request: Request, run_id: str, step: int) -> FileResponse:
    run = _get_run(request, run_id)
    for snap in list_snapshots(run.path):
        if snap.step == step:
            return FileResponse(snap.path, media_type="image/png",
                                headers={"Cache-Control": "public, max-age=3600"})
    raise HTTPException(404, f"run {run.id!r} has no snapshot at step {step}")


@router.get("/api/runs/{run_id}/figures", responses=NOT_FOUND,
            summary="Plotly specs of a run's curves")
def run_figure_specs(request: Request, run_id: str) -> dict[str, Any]:
    run = _get_run(request, run_id)
    specs, last_step = run_curves(run)
    return {"run": run_payload(run), "snapshots": snapshot_list(run), "last_step": last_step,
            "figures": {f["id"]: f for f in specs}}


# -- our benchmark and ablation files -------------------------------------------------------

@router.get("/api/bench/train", responses=CSV_OR_404,
            summary="Our `mae bench train` result (404 until it exists)")
def bench_train(request: Request, format: Format = "json") -> Any:
    path = bench_train_file(request.app.state.settings)
    bench, error = load_bench(path)
    if error:
        raise HTTPException(422, error)
    if bench is None:
        raise HTTPException(404, f"no benchmark at {path}; run `mae bench train` to produce it")
    if format == "csv":
        rows = [{**bench.meta, **r.model_dump()} for r in bench.rows]
        return _csv_response(rows, "bench_train.csv")
    return bench.model_dump(mode="json")


@router.get("/api/bench/{name}", responses=CSV_OR_404,
            summary="One committed benchmark file: train_gpu, infer, infer_gpu, peer, peer_gpu, "
                    "serve_latency (404 until it exists)")
def bench_file(request: Request, name: str, format: Format = "json") -> Any:
    if name not in BENCH_FILES:
        raise HTTPException(404, f"unknown benchmark {name!r}; known: train, "
                                 f"{', '.join(BENCH_FILES)}")
    result, error = load_bench_file(request.app.state.settings, name)
    if error:
        raise HTTPException(422, error)
    spec = BENCH_FILES[name]
    if result is None:
        raise HTTPException(404, f"no benchmark at {bench_dir(request.app.state.settings) / spec.filename}; run "
                                 f"`{spec.command}` to produce it")
    if format == "csv":
        if isinstance(result, ServeLatency):
            rows = [{"kind": "latency", "path": k, **v.model_dump()}
                    for k, v in result.latency.items()]
            rows += [{"kind": "throughput", **r.model_dump()} for r in result.throughput]
            rows = [{**result.meta, **r} for r in rows]
        else:
            rows = [{**result.meta, **r.model_dump()} for r in result.rows]
        return _csv_response(rows, f"{spec.filename.removesuffix('.json')}.csv")
    return result.model_dump(mode="json")


@router.get("/api/ablations", summary="Which small-scale ablation results exist")
def ablations_index(request: Request) -> dict[str, Any]:
    folder = ablations_dir(request.app.state.settings)
    out = {}
    for factor in ABLATION_FACTORS:
        result, error = load_ablation(folder, factor)
        out[factor] = {"present": result is not None, "error": error,
                       "url": f"/api/ablations/{factor}"}
    return {"ablations_dir": str(folder), "factors": out}


@router.get("/api/ablations/{factor}", responses=CSV_OR_404,
            summary="One `mae ablate` result file")
def ablation(request: Request, factor: str, format: Format = "json") -> Any:
    if factor not in ABLATION_FACTORS:
        raise HTTPException(404, f"unknown factor {factor!r}; known: {', '.join(ABLATION_FACTORS)}")
    result, error = load_ablation(ablations_dir(request.app.state.settings), factor)
    if error:
        raise HTTPException(422, error)
    if result is None:
        raise HTTPException(404, f"no results for {factor}; run `mae ablate` to produce them")
    if format == "csv":
        rows = [{"factor": factor, **r.model_dump()} for r in result.rows]
        return _csv_response(rows, f"ablation_{factor}.csv")
    return result.model_dump(mode="json")
