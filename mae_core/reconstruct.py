"""Batched, thread-safe reconstruction: PIL image in, Figure-4 panels and metrics out."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import DecoderMissingError, InvalidParameterError
from .imaging import fit_image, mean_colour, to_rgb, to_tensor, to_uint8
from .fields import SEED
from .masking import MaskRequest, check_explicit_mask, check_ratio_for_grid, draw_scores, make_generator
from .metrics import patch_mse_map, summarize_errors
from .model import MaskedAutoencoderViT
from .precision import autocast, autocast_dtype, check_precision, dtype_name

log = logging.getLogger(__name__)

MAX_SEED = int(SEED.maximum)  # type: ignore[arg-type]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` → CUDA if available, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Reconstruction:
    """One reconstructed image: the paper's Figure 4 panels plus mask, error map and metrics.

    Image panels are uint8 [H, W, 3]; ``mask`` and ``error_map`` are on the patch grid [h, w]
    (mask 1 = removed; error = per-patch MSE in pixel space). ``uses_target_stats`` is True when a
    norm-pix model's output was un-normalised with each patch's true mean and variance.
    """

    original: np.ndarray
    masked: np.ndarray
    reconstruction: np.ndarray
    pasted: np.ndarray
    mask: np.ndarray
    error_map: np.ndarray
    metrics: dict[str, float]
    seed: int | None
    mask_ratio: float  # achieved: the fraction of patches actually removed
    strategy: str
    uses_target_stats: bool = False
    requested_mask_ratio: float | None = None  # what was asked (None for an explicit mask)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def panels(self) -> dict[str, np.ndarray]:
        return {"original": self.original, "masked": self.masked,
                "reconstruction": self.reconstruction, "pasted": self.pasted}


@dataclass(frozen=True)
class PreparedImage:
    """An image already fitted to a model's input, with its normalised tensor [3, H, W].

    Made by ``Reconstructor.prepare_input`` (e.g. in a server's request thread, so the inference
    thread only runs the model); ``reconstruct_batch`` accepts it wherever it accepts an image.
    """

    image: Image.Image
    tensor: torch.Tensor


class Reconstructor:
    """Runs a loaded MAE for reconstruction. One instance per process; safe to share by threads.

    Args:
        model: a ``MaskedAutoencoderViT`` with a decoder.
        device: where to run; None picks CUDA, then MPS, then CPU.
        name: a label (checkpoint id) carried into results.
        amp_dtype: autocast dtype on GPU (bf16 default).
        precision: ``auto`` (bf16 on CUDA, float32 elsewhere), ``fast`` (bf16 also on CPUs with
            native bf16), ``bf16`` or ``fp32``; see ``mae_core.precision``.

    Example:
        >>> r = Reconstructor.from_checkpoint("checkpoints/mae-lab-default.safetensors")
        >>> rec = r.reconstruct(Image.open("fox.jpg"), mask_ratio=0.75, seed=2)
        >>> rec.metrics["masked_psnr"]
    """

    def __init__(
        self,
        model: MaskedAutoencoderViT,
        device: str | torch.device | None = None,
        name: str | None = None,
        amp_dtype: torch.dtype = torch.bfloat16,
        precision: str = "auto",
    ) -> None:
        if not model.has_decoder:
            raise DecoderMissingError(
                "this checkpoint has no decoder (encoder-only weights), so it cannot reconstruct; "
                "use an encoder+decoder checkpoint such as mae_visualize_vit_large.pth or one "
                "trained with `mae train`"
            )
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.card: dict[str, Any] = getattr(model, "card", {}) or {}
        self.precision = check_precision(precision)
        self._autocast_dtype = autocast_dtype(precision, self.device, amp_dtype)
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        precision: str = "auto") -> "Reconstructor":
        from .checkpoint import load_model

        return cls(load_model(path), device=device, name=Path(path).stem, precision=precision)

    # ------------------------------------------------------------ properties
    @property
    def config(self):
        return self.model.config

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.img_size

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.config.grid_size

    @property
    def compute_dtype(self) -> str:
        """What the model runs in: ``fp32``, ``bf16`` or ``fp16`` (autocast)."""
        return dtype_name(self._autocast_dtype)

    @property
    def norm_pix_loss(self) -> bool:
        return self.config.norm_pix_loss

    # -------------------------------------------------------------- public
    def prepare(self, image: Image.Image, resize: str = "crop") -> Image.Image:
        """The RGB image the model will see (resized by ``resize`` policy)."""
        return fit_image(to_rgb(image), self.image_size, self.patch_size, resize)

    def prepare_input(self, image: Image.Image | PreparedImage, resize: str = "crop") -> PreparedImage:
        """``prepare`` plus the model's input tensor; cheap for an image that already fits."""
        if isinstance(image, PreparedImage):
            # its image is RGB already: fit_image hands it back untouched when it fits this model
            if fit_image(image.image, self.image_size, self.patch_size, resize) is image.image:
                return image
            image = image.image
        fitted = self.prepare(image, resize)
        return PreparedImage(fitted, to_tensor(fitted))

    def reconstruct(
        self,
        image: Image.Image | PreparedImage,
        mask_ratio: float = 0.75,
        strategy: str = "random",
        seed: int | None = None,
        mask: np.ndarray | Sequence[Sequence[int]] | None = None,
        resize: str = "crop",
    ) -> Reconstruction:
        """Mask ``image`` and reconstruct it. ``mask`` (h x w, 1 = removed) overrides ratio and
        strategy; ``seed`` None draws one (returned in the result so it can be replayed)."""
        return self.reconstruct_batch(
            [image], mask_ratio, strategy, seeds=[seed], masks=[mask] if mask is not None else None,
            resize=resize,
        )[0]

    def reconstruct_batch(
        self,
        images: Sequence[Image.Image | PreparedImage],
        mask_ratio: float = 0.75,
        strategy: str = "random",
        seeds: Sequence[int | None] | None = None,
        masks: Sequence[np.ndarray | Sequence[Sequence[int]] | None] | None = None,
        resize: str = "crop",
    ) -> list[Reconstruction]:
        """Reconstruct several images in one forward pass (same ratio and strategy).

        Images that resize to different grids (``resize="keep-aspect"``) run in separate passes.
        """
        if not images:
            return []
        seeds = list(seeds) if seeds is not None else [None] * len(images)
        masks = list(masks) if masks is not None else [None] * len(images)
        if len(seeds) != len(images) or len(masks) != len(images):
            raise InvalidParameterError("seeds and masks must have one entry per image")
        requests = [MaskRequest.sampled(mask_ratio, strategy, seed) if given is None
                    else MaskRequest.from_mask(given) for seed, given in zip(seeds, masks)]
        return self.reconstruct_requests(images, requests, resize)

    def reconstruct_requests(
        self,
        images: Sequence[Image.Image | PreparedImage],
        requests: Sequence[MaskRequest],
        resize: str = "crop",
    ) -> list[Reconstruction]:
        """Reconstruct ``images[i]`` under ``requests[i]`` (made by ``MaskRequest.sampled`` or
        ``from_mask``, which checked them; only what depends on the patch grid is checked here).

        Images are grouped into forward passes by grid and ``MaskRequest.group_key``.
        """
        if len(requests) != len(images):
            raise InvalidParameterError("requests must have one entry per image")
        prepared = [self.prepare_input(img, resize) for img in images]
        results: list[Reconstruction | None] = [None] * len(images)
        groups: dict[Any, list[int]] = {}
        for i, item in enumerate(prepared):
            height, width = item.tensor.shape[-2:]
            groups.setdefault((int(height), int(width), requests[i].group_key()), []).append(i)
        for indices in groups.values():
            recs = self._run_group([prepared[i] for i in indices], [requests[i] for i in indices])
            for i, rec in zip(indices, recs):
                results[i] = rec
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------- internals
    def _masking(self, grid: tuple[int, int], requests: Sequence[MaskRequest],
                 ) -> tuple[dict[str, Any], list[int | None]]:
        """The model's masking arguments for one group: explicit masks as ``mask``; sampled
        ones as scores (``noise``) with the ratio, argsorted once, inside the model."""
        first = requests[0]
        if first.explicit is not None:
            stacked = torch.stack([torch.from_numpy(check_explicit_mask(r.explicit, grid))
                                   for r in requests if r.explicit is not None]).float()
            return {"mask": stacked.reshape(len(requests), -1)}, [None] * len(requests)
        check_ratio_for_grid(first.mask_ratio, grid)
        seeds = [secrets.randbelow(2**31) if r.seed is None else r.seed for r in requests]
        # one generator per seed, so a request's mask does not depend on its batch-mates
        noise = torch.cat([draw_scores(first.strategy, 1, grid, first.mask_ratio,
                                       make_generator(seed)) for seed in seeds])
        return {"noise": noise, "mask_ratio": first.mask_ratio}, list(seeds)

    def _run_group(self, images: list[PreparedImage], requests: Sequence[MaskRequest],
                   ) -> list[Reconstruction]:
        p = self.patch_size
        height, width = images[0].tensor.shape[-2:]
        grid = (height // p, width // p)
        masking, used_seeds = self._masking(grid, requests)
        masking = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                   for k, v in masking.items()}
        x = torch.stack([item.tensor for item in images]).to(self.device, non_blocking=True)
        with self._lock, torch.inference_mode(), autocast(self.device, self._autocast_dtype):
            start = time.perf_counter()
            out = self.model(x, **masking)
            pred = out.pred.float()
            if self.norm_pix_loss:
                # masked patches are shown with their TRUE mean/variance (a leak; flagged)
                target = self.model.patchify(x)
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                pred = pred * (var + 1.0e-6) ** 0.5 + mean
            y = self.model.unpatchify(pred, grid)  # [N, 3, H, W]
            originals, recons = to_uint8(x), to_uint8(y)
            elapsed_ms = (time.perf_counter() - start) * 1000.0
        grid_masks = out.mask.reshape(-1, *grid).to(torch.uint8).cpu().numpy()
        # Removed patches show the mean colour (a zero input); the pasted panel takes them from
        # the reconstruction. Same pixels as converting x * (1 - m) and x * (1 - m) + y * m.
        removed = grid_masks.repeat(p, axis=1).repeat(p, axis=2)[..., None].astype(bool)
        maskeds = np.where(removed, mean_colour(), originals)
        pasteds = np.where(removed, recons, originals)
        panels = (originals, maskeds, recons, pasteds)
        results = []
        for i in range(len(images)):
            original, masked_i, recon, pasted_i = (panel[i] for panel in panels)
            errors = patch_mse_map(recon, original, p)
            metrics = summarize_errors(errors, grid_masks[i])
            metrics["inference_ms"] = elapsed_ms / len(images)
            results.append(Reconstruction(
                original=original, masked=masked_i, reconstruction=recon, pasted=pasted_i,
                mask=grid_masks[i], error_map=errors.astype(np.float32),
                metrics=metrics, seed=used_seeds[i],
                mask_ratio=float(grid_masks[i].mean()),
                strategy="custom" if requests[i].explicit is not None else requests[i].strategy,
                uses_target_stats=self.norm_pix_loss,
                requested_mask_ratio=requests[i].requested_ratio,
            ))
        return results
