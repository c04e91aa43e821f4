"""The result files the figures read (benchmark, ablation, serve JSON), validated on load.

The formats are defined once in ``mae_core.results`` (which the writers use too); these models
only give the page typed access and the API its schema, and check each file with the core
validator before pydantic reads it, so no bound is restated here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mae_core.results import ABLATION_FACTORS, ablation_problems, bench_problems  # noqa: F401 - re-exported

from .theme import machine_name

# -- result files written by the trainer's commands -------------------------------------------

class _Open(BaseModel):
    """Result files may carry more fields than the page reads; they are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class _Checked(_Open):
    """A whole benchmark file, checked against its ``mae_core.results.BENCH_FORMATS`` entry."""

    kind: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _the_format(cls, raw: Any) -> Any:
        """The file format as its writer makes it (mae_core.results), checked first."""
        problems = bench_problems(cls.kind, raw)
        if problems:
            raise ValueError("; ".join(problems))
        return raw


class _BenchFile(_Checked):
    """A benchmark file: ``meta`` (machine, date, settings) and its ``rows``."""

    meta: dict[str, Any] = Field(default_factory=dict)


class BenchRow(_Open):
    """One row of ``mae bench train``: an encoder variant at one decoder depth."""

    encoder: Literal["visible-only", "mask-tokens"]
    decoder_depth: int
    step_s: float
    images_per_s: float
    speedup: float | None = None


class BenchTrain(_BenchFile):
    """The ``mae bench train`` JSON file (local re-run of the paper's Table 2 comparison)."""

    kind: ClassVar[str] = "train"
    rows: list[BenchRow]

    def speedups(self) -> dict[int, float]:
        """Visible-only speed-up per decoder depth (file value, else step-time ratio)."""
        masked = {r.decoder_depth: r for r in self.rows if r.encoder == "mask-tokens"}
        out: dict[int, float] = {}
        for row in self.rows:
            if row.encoder != "visible-only":
                continue
            if row.speedup is not None:
                out[row.decoder_depth] = row.speedup
            elif row.decoder_depth in masked:
                out[row.decoder_depth] = masked[row.decoder_depth].step_s / row.step_s
        return out

    def label(self) -> str:
        meta = self.meta
        parts = [str(meta[k]) for k in ("model",) if meta.get(k)]
        if meta.get("img_size"):
            parts.append(f"{meta['img_size']} px")
        if meta.get("batch_size"):
            parts.append(f"batch {meta['batch_size']}")
        if meta.get("device") or meta.get("gpu") or meta.get("cpu"):
            parts.append(machine_name(meta))
        return "Ours: " + (", ".join(parts) if parts else "local benchmark")


AblationFactor = str  # one of mae_core.results.ABLATION_FACTORS


class AblationRow(_Open):
    value: str | int | float | bool | None
    recon_loss: float | None = None
    linprobe_acc: float | None = None


class AblationResult(_Open):
    """One ``mae ablate`` result file: ``bench-results/ablations/<factor>.json``."""

    factor: AblationFactor
    meta: dict[str, Any] = Field(default_factory=dict)
    rows: list[AblationRow] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _the_format(cls, raw: Any) -> Any:
        """The file format as ``mae ablate`` writes it (mae_core.results), checked first."""
        problems = ablation_problems(raw)
        if problems:
            raise ValueError("; ".join(problems))
        return raw

    def setting(self) -> str:
        """What ran, from ``meta``: model, data, size, schedule (empty if meta is empty)."""
        meta = self.meta
        parts = []
        for key, fmt in (("model", "{}"), ("dataset", "{}"), ("img_size", "{} px"),
                         ("epochs", "{} epochs"), ("steps", "{} steps")):
            if meta.get(key) not in (None, ""):
                parts.append(fmt.format(meta[key]))
        return ", ".join(parts)

    def label(self) -> str:
        setting = self.setting()
        return "Ours (small scale" + (f": {setting}" if setting else "") + ")"


class BenchInferRow(_Open):
    """One row of ``mae bench infer``: a model at one batch size."""

    model: str
    batch_size: int
    ms_per_batch: float
    images_per_s: float
    gflops_per_s: float | None = None
    fraction_of_matmul: float | None = None


class BenchInfer(_BenchFile):
    """The ``mae bench infer`` JSON file (reconstruction images/s on one device)."""

    kind: ClassVar[str] = "infer"
    rows: list[BenchInferRow]


class BenchPeerRow(_Open):
    """One row of ``mae bench peer``: ours vs Hugging Face at one mode and batch size."""

    model: str
    mode: Literal["inference", "train"]
    batch_size: int
    ours_images_per_s: float
    peer_images_per_s: float
    speedup: float | None = None
    max_abs_diff: float | None = None


class BenchPeer(_BenchFile):
    """The ``mae bench peer`` JSON file (ours vs transformers' ViTMAEForPreTraining)."""

    kind: ClassVar[str] = "peer"
    rows: list[BenchPeerRow]


class LatencyStat(_Open):
    p50_ms: float
    p90_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    n: int | None = None


class ThroughputRow(_Open):
    batching: bool
    clients: int
    requests: int | None = None
    images_per_s: float
    mean_batch_size: float | None = None
    max_batch_size: int | None = None
    speedup_vs_no_batching: float | None = None


SERVE_META_KEYS = ("date", "cpu", "gpu", "device", "compute_dtype", "torch", "machine", "checkpoint",
                   "load_average", "torch_threads_bare", "batch_window_ms", "python")


class ServeLatency(_Checked):
    """The ``python -m mae_tools.serve_bench`` JSON file: request latency and throughput of the server.

    Older files lack ``post_jpeg``, ``throughput`` and ``server_peak_rss_mb``; they load with
    those parts absent.
    """

    kind: ClassVar[str] = "serve_latency"
    latency: dict[str, LatencyStat]
    overhead_p50_ms: float | None = None
    overhead_p50: dict[str, dict[str, float]] | None = None  # e.g. post_jpeg_vs_library: ms, ratio
    server_peak_rss_mb: float | None = None
    throughput: list[ThroughputRow] = Field(default_factory=list)
    torch: str | None = None
    machine: str | None = None
    device: str | None = None
    checkpoint: str | None = None
    load_average: list[float] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The machine and setting facts of the run, in the shape of the other files' ``meta``."""
        full = self.model_dump(mode="json")
        return {k: full[k] for k in SERVE_META_KEYS if full.get(k) not in (None, "", [])}


# -- shared helpers --------------------------------------------------------------------------
