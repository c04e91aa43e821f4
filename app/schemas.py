"""Response bodies of the REST API (they drive the OpenAPI docs at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Panels(BaseModel):
    """The paper's Figure 4 panels, each a base64-encoded PNG (no ``data:`` prefix)."""

    original: str = Field(description="the image as the model sees it (resized, cropped)",
                          examples=["iVBORw0KGgoAAAANSUhEUgAA..."])
    masked: str = Field(description="the original with removed patches blanked",
                        examples=["iVBORw0KGgoAAAANSUhEUgAA..."])
    reconstruction: str = Field(description="the decoder output for every patch",
                                examples=["iVBORw0KGgoAAAANSUhEUgAA..."])
    pasted: str = Field(description="reconstruction of removed patches + the visible originals",
                        examples=["iVBORw0KGgoAAAANSUhEUgAA..."])


class Metrics(BaseModel):
    """Reconstruction quality in pixel space ([0, 255] scale)."""

    masked_mse: float = Field(description="mean squared error over removed patches", examples=[412.7])
    masked_psnr: float | None = Field(description="PSNR (dB) over removed patches; null if exact",
                                      examples=[21.97])
    visible_mse: float = Field(description="mean squared error over visible patches", examples=[95.3])
    inference_ms: float = Field(description="model time for this image (batch time / batch size)",
                                examples=[18.4])


class Timing(BaseModel):
    """Where the request's time went on the server."""

    queue_ms: float = Field(description="time waiting for the inference worker", examples=[3.1])
    batch_size: int = Field(description="images in the forward pass this one ran in", examples=[1])
    server_ms: float = Field(description="total time from receiving the upload to the reply",
                             examples=[31.5])


class CompareRow(BaseModel):
    """One model's reconstruction under the shared mask."""

    model: str = Field(description="checkpoint id", examples=["mae-lab-default"])
    metrics: dict[str, float | None] = Field(
        description="masked_psnr (dB, null if exact) and masked_mse over the removed patches",
        examples=[{"masked_psnr": 21.97, "masked_mse": 412.7}])
    uses_target_stats: bool = Field(description="norm-pix checkpoint: removed patches were "
                                    "un-normalised with their true statistics", examples=[False])
    panels: dict[str, str] = Field(
        description="base64 PNGs: masked, reconstruction, pasted (reconstruction + visible)",
        examples=[{"masked": "iVBORw0K...", "reconstruction": "iVBORw0K...", "pasted": "iVBORw0K..."}])


class CompareResponse(BaseModel):
    """The same image and mask through several checkpoints, one row per model."""

    seed: int | None = Field(description="seed that drew the shared mask (null for an explicit "
                             "mask)", examples=[1234])
    strategy: str = Field(description="random, block, grid, or custom (explicit mask)",
                          examples=["random"])
    requested_mask_ratio: float | None = Field(description="the mask_ratio sent", examples=[0.75])
    mask_ratio: float = Field(description="fraction of patches removed", examples=[0.75])
    resize: str = Field(description="resize policy applied", examples=["crop"])
    grid: list[int] = Field(description="patch grid [rows, cols]", examples=[[14, 14]])
    mask: list[list[int]] = Field(description="the shared mask, 1 = removed", examples=[[[1, 0]]])
    original: str = Field(description="the image as the models see it (base64 PNG)",
                          examples=["iVBORw0K..."])
    rows: list[CompareRow]
    server_ms: float = Field(description="time from upload to reply", examples=[80.2])


class ReconstructResponse(BaseModel):
    """A reconstruction: panels, mask, per-patch error, metrics and what produced them."""

    model: str = Field(description="checkpoint id used", examples=["mae-lab-default"])
    seed: int | None = Field(description="mask seed used (null for an explicit mask); send it "
                                         "back to get the same mask", examples=[1234])
    mask_ratio: float = Field(description="fraction of patches actually removed (the achieved "
                              "ratio: int(L x (1 - requested)) patches are kept)", examples=[0.75])
    requested_mask_ratio: float | None = Field(
        default=None, description="the mask_ratio sent (null for an explicit mask)", examples=[0.75])
    strategy: str = Field(description="random, block, grid, or custom (explicit mask)",
                          examples=["random"])
    resize: str = Field(description="resize policy applied", examples=["crop"])
    grid: list[int] = Field(description="patch grid [rows, cols]", examples=[[14, 14]])
    patch_size: int = Field(description="patch side in pixels", examples=[16])
    image_size: list[int] = Field(description="model input [height, width] in pixels",
                                  examples=[[224, 224]])
    mask: list[list[int]] = Field(description="rows x cols, 1 = removed, 0 = visible",
                                  examples=[[[1, 0, 1], [1, 1, 0]]])
    error_map: list[list[float]] = Field(description="per-patch MSE, rows x cols",
                                         examples=[[[410.2, 88.1], [512.0, 97.4]]])
    metrics: Metrics
    timing: Timing
    compute_dtype: str = Field(
        default="fp32", description="arithmetic the model ran in: fp32, or bf16 autocast (server "
        "setting MAE_PRECISION)", examples=["fp32"])
    panel_format: Literal["png", "jpeg", "webp"] = Field(
        default="png", description="encoding of the base64 panels", examples=["png"])
    uses_target_stats: bool = Field(
        description="true for norm-pix checkpoints: removed patches were un-normalised with "
                    "their true mean and variance", examples=[False])
    note: str | None = Field(default=None, description="a caveat to show beside the figure",
                             examples=[None])
    panels: Panels
    attention: dict[str, Any] | None = Field(
        default=None, description="with attention=true: the last encoder block's cls-to-patch "
        "attention, `heads` [H][rows][cols] and `mean` [rows][cols], each scaled to a maximum of "
        "1 (`scale` has the raw maxima); null for removed patches",
        examples=[{"block": 11, "num_heads": 1, "heads": [[[1.0, None], [0.42, 0.1]]],
                   "mean": [[1.0, None], [0.42, 0.1]], "scale": {"heads": [0.31], "mean": 0.31}}])


class CardSummary(BaseModel):
    architecture: str = Field(examples=["ViT-Ti/16 encoder (192-d, 12 blocks, 3 heads), "
                                        "decoder 128-d × 4 blocks, 224×224 px"])
    training_data: str = Field(examples=["Debian wallpapers corpus (2400 images)"])
    training: str = Field(examples=["epochs: 200; mask ratio: 0.75"])
    norm_pix_loss: bool = Field(examples=[True])
    image_size: list[int] | None = Field(default=None, examples=[[224, 224]])
    patch_size: int | None = Field(default=None, examples=[16])


class ModelEntry(BaseModel):
    id: str = Field(description="what to send as `model`", examples=["mae-lab-default"])
    file: str = Field(examples=["mae-lab-default.safetensors"])
    card: dict[str, Any] = Field(description="the checkpoint's JSON card",
                                 examples=[{"norm_pix_loss": True}])
    summary: CardSummary
    can_reconstruct: bool = Field(description="false for encoder-only or unreadable files",
                                  examples=[True])
    error: str | None = Field(description="why the file cannot be used", examples=[None])
    loaded: bool = Field(description="currently in memory", examples=[True])
    default: bool = Field(description="the checkpoint used when a request names none",
                          examples=[True])


class CachePolicy(BaseModel):
    """How the server keeps checkpoints in memory, so a client can tell what a request costs."""

    size: int = Field(description="loaded checkpoints kept besides the default (MAE_MODEL_CACHE_SIZE)",
                      examples=[2])
    policy: str = Field(examples=["least recently used; the default checkpoint is never evicted"])
    loaded: list[str] = Field(description="checkpoint ids in memory now, least recently used first")
    max_tokens_per_image: int = Field(
        description="most patches per image a served checkpoint may have (MAE_MAX_SERVE_TOKENS)",
        examples=[1024])


class ModelsResponse(BaseModel):
    default_model: str = Field(examples=["mae-lab-default"])
    default_present: bool = Field(description="whether the default checkpoint file exists",
                                  examples=[True])
    default_state: str = Field(description="loading, ready, missing or failed", examples=["ready"])
    default_message: str = Field(examples=["default checkpoint 'mae-lab-default' loaded"])
    models: list[ModelEntry]
    cache: CachePolicy


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])
    version: str = Field(examples=["0.1.0"])
    worker_alive: bool = Field(examples=[True])
    pending: int = Field(description="reconstructions accepted and not finished", examples=[0])


class ReadyResponse(BaseModel):
    ready: bool = Field(examples=[True])
    state: str = Field(description="loading, ready, missing or failed", examples=["ready"])
    message: str = Field(examples=["default checkpoint 'mae-lab-default' loaded"])
    default_model: str = Field(examples=["mae-lab-default"])
    loaded: list[str] = Field(description="checkpoint ids in memory", examples=[["mae-lab-default"]])


class ErrorResponse(BaseModel):
    error: str = Field(description="machine-readable kind", examples=["invalid_parameter"])
    status: int = Field(examples=[422])
    message: str = Field(description="what went wrong and what to change",
                         examples=["mask_ratio must be in [0, 1) (e.g. 0.75 for the paper's 75%), got 1.5"])
    fields: list[dict[str, str]] | None = Field(default=None, examples=[[{"field": "mask_ratio",
                                                                           "message": "Input should be less than 1"}]])
