"""Masking strategies and the one mechanism that turns any of them into keep/restore indices.

Every strategy produces *scores* of shape [N, L]: the patches with the smallest scores are kept.
That is exactly the official ``noise`` contract (``ids_shuffle = argsort(noise)``), so random,
block, grid and user-drawn masks all go through the same ``indices_from_scores`` path, and every
sample keeps ``int(L * (1 - ratio))`` patches.

Randomness is drawn on the CPU from a ``torch.Generator`` and moved afterwards, so the same seed
gives the same mask on CPU and GPU.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Callable, Hashable, NamedTuple

import numpy as np
import torch

from .errors import InvalidParameterError
from .fields import MASK_RATIO, SEED

GRID_RATIO = 0.75  # grid masking keeps one patch of every 2x2 cell


class MaskIndices(NamedTuple):
    """Result of masking a batch of L patches down to K visible ones."""

    ids_keep: torch.Tensor  # [N, K] indices of kept patches, in score order
    ids_restore: torch.Tensor  # [N, L] inverse permutation (unshuffle)
    mask: torch.Tensor  # [N, L] float, 0 = keep, 1 = removed, in original patch order


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """Patches kept per sample, as the official code: ``int(L * (1 - ratio))``."""
    check_ratio(mask_ratio)
    return kept_count(num_patches, mask_ratio)


def kept_count(num_patches: int, mask_ratio: float) -> int:
    """``int(L * (1 - ratio))`` for a ratio already checked (no validation on this path)."""
    return int(num_patches * (1 - mask_ratio))


def check_ratio_for_grid(mask_ratio: float, grid: tuple[int, int]) -> int:
    """Patches kept for ``mask_ratio`` on ``grid``; InvalidParameterError when the ratio would
    remove no patch or every patch there (the count depends on the image's patch grid)."""
    length = grid[0] * grid[1]
    keep = kept_count(length, mask_ratio)
    where = f"the {grid[0]}x{grid[1]} patch grid of this image size ({length} patches)"
    if keep >= length:
        lowest = math.ceil(1e4 / length) / 1e4  # 1/L rounded up: removes at least one patch
        raise InvalidParameterError(
            f"mask_ratio {mask_ratio:g} removes no patch of {where}: the model keeps "
            f"int({length} x (1 - ratio)) = {keep}; send a mask_ratio of at least {lowest:g}")
    if keep < 1:
        highest = math.floor(1e4 * (1 - 1 / length)) / 1e4  # keeps at least one patch
        raise InvalidParameterError(
            f"mask_ratio {mask_ratio:g} removes every patch of {where}: the model keeps "
            f"int({length} x (1 - ratio)) = 0; send a mask_ratio of at most {highest:g}")
    return keep


def check_ratio(mask_ratio: float) -> None:
    if not isinstance(mask_ratio, (int, float)) or not math.isfinite(mask_ratio):
        raise InvalidParameterError(f"mask_ratio must be a finite number, got {mask_ratio!r}")
    if not 0.0 <= mask_ratio < 1.0:
        raise InvalidParameterError(
            f"mask_ratio must be in [0, 1) (e.g. 0.75 for the paper's 75%), got {mask_ratio}"
        )


def indices_from_scores(scores: torch.Tensor, len_keep: int) -> MaskIndices:
    """Keep the ``len_keep`` lowest-scoring patches of each row of ``scores`` [N, L].

    Ties are broken by patch position (stable sort), so a 0/1 mask used as scores keeps the
    visible patches in their original order.
    """
    n, length = scores.shape
    if not 0 <= len_keep <= length:
        raise InvalidParameterError(f"cannot keep {len_keep} of {length} patches")
    ids_shuffle = torch.argsort(scores, dim=1, stable=True)  # [N, L] ascending: small = keep
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # [N, L]
    ids_keep = ids_shuffle[:, :len_keep]  # [N, K]
    mask = torch.ones(n, length, device=scores.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)  # [N, L] back in patch order
    return MaskIndices(ids_keep, ids_restore, mask)


def indices_from_mask(mask: torch.Tensor) -> MaskIndices:
    """Indices for an explicit mask [N, L] (1/True = removed) with the same count per sample."""
    if mask.dim() != 2:
        raise InvalidParameterError(f"an explicit mask must be [N, L], got shape {tuple(mask.shape)}")
    removed = mask.bool()
    counts = removed.sum(dim=1)
    if counts.numel() and not bool((counts == counts[0]).all()):
        raise InvalidParameterError(
            f"every sample must hide the same number of patches, got counts {counts.tolist()}"
        )
    length = mask.shape[1]
    len_keep = length - int(counts[0]) if counts.numel() else length
    if len_keep < 1:
        raise InvalidParameterError("an explicit mask must leave at least one patch visible")
    return indices_from_scores(removed.float(), len_keep)


def check_explicit_mask(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``mask`` if it is one 0/1 entry per patch of ``grid`` hiding some and showing some."""
    if mask.shape != tuple(grid):
        raise InvalidParameterError(
            f"mask must be a {grid[0]}x{grid[1]} grid of 0/1 (one per patch), got shape {mask.shape}")
    removed = int(mask.sum())
    if removed == 0 or removed == mask.size:
        raise InvalidParameterError("mask must hide at least one patch and leave at least one visible")
    return mask


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a fresh random seed when None)."""
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed) % (2**63))
    return g


@dataclass(frozen=True)
class MaskRequest:
    """What to hide in one image, checked once where it enters (``sampled``/``explicit``).

    A sampled request travels as (ratio, strategy, seed) and becomes scores, the model's
    ``noise``; an explicit one carries its 0/1 grid (1 = removed) and reaches the model as ``mask``.
    """

    mask_ratio: float = MASK_RATIO.default
    strategy: str = "random"
    seed: int | None = None
    explicit: np.ndarray | None = None  # [h, w] uint8, 1 = removed

    @classmethod
    def sampled(cls, mask_ratio: float = MASK_RATIO.default, strategy: str = "random",
                seed: int | None = None) -> "MaskRequest":
        """A sampled mask; InvalidParameterError for a ratio, strategy or seed out of bounds."""
        _check_known(strategy)
        ratio = MASK_RATIO.check(mask_ratio)
        _check_fits(strategy, ratio)
        if seed is not None:
            SEED.check(seed)
        return cls(ratio, strategy, seed)

    @classmethod
    def from_mask(cls, mask) -> "MaskRequest":
        """An explicit mask: a 2-D grid of 0/1 (its size and count are checked against the
        image's patch grid where that is known, by ``check_explicit_mask``)."""
        arr = np.asarray(mask)
        if arr.ndim != 2 or not np.isin(arr, (0, 1)).all():
            raise InvalidParameterError("mask entries must be 0 (visible) or 1 (removed), in rows")
        return cls(explicit=arr.astype(np.uint8))

    def on_grid(self, grid: tuple[int, int]) -> tuple["MaskRequest", int | None]:
        """This request as an explicit mask on ``grid`` and the seed that drew it (None for an
        explicit mask): the one mask several models can share. Drawn as the reconstructor draws
        a sampled request, so the same seed gives the same mask as a single reconstruction."""
        if self.explicit is not None:
            return MaskRequest(explicit=check_explicit_mask(self.explicit, grid)), None
        keep = check_ratio_for_grid(self.mask_ratio, grid)
        seed = secrets.randbelow(2**31) if self.seed is None else self.seed
        scores = draw_scores(self.strategy, 1, grid, self.mask_ratio, make_generator(seed))
        mask = indices_from_scores(scores, keep).mask.reshape(grid)
        return MaskRequest(explicit=mask.to(torch.uint8).numpy()), seed

    @property
    def requested_ratio(self) -> float | None:
        """The ratio asked for (None for an explicit mask, which sets its own)."""
        return None if self.explicit is not None else self.mask_ratio

    def group_key(self) -> Hashable:
        """Requests with equal keys can share one forward pass: the exact ratio and strategy,
        or explicit masks hiding the same number of patches."""
        if self.explicit is not None:
            return ("explicit", int(self.explicit.sum()))
        return ("sampled", self.mask_ratio, self.strategy)


ScoreFn = Callable[[int, tuple[int, int], float, torch.Generator], torch.Tensor]
_STRATEGIES: dict[str, ScoreFn] = {}


def register_strategy(name: str) -> Callable[[ScoreFn], ScoreFn]:
    def wrap(fn: ScoreFn) -> ScoreFn:
        _STRATEGIES[name] = fn
        return fn

    return wrap


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


STRATEGY_ORDER = ("random", "block", "grid")  # the paper's default first, for menus


def ordered_strategies() -> list[str]:
    """Registered masking strategies, the paper's three first (forms and the API's enum)."""
    known = list_strategies()
    return [s for s in STRATEGY_ORDER if s in known] + [s for s in known if s not in STRATEGY_ORDER]


def check_strategy(strategy: str, mask_ratio: float) -> None:
    """Raise InvalidParameterError for an unknown strategy or a ratio it cannot produce."""
    _check_known(strategy)
    check_ratio(mask_ratio)
    _check_fits(strategy, mask_ratio)


def _check_known(strategy: str) -> None:
    if strategy not in _STRATEGIES:
        raise InvalidParameterError(
            f"unknown masking strategy {strategy!r}; choose one of {', '.join(list_strategies())}"
        )


def _check_fits(strategy: str, mask_ratio: float) -> None:
    if strategy == "grid" and abs(mask_ratio - GRID_RATIO) > 1e-9:
        raise InvalidParameterError(
            f"grid masking keeps one patch of every 2x2 cell, so its ratio is always 0.75; "
            f"got {mask_ratio} (use strategy 'random' or 'block' for other ratios)"
        )


def mask_scores(
    strategy: str,
    batch_size: int,
    grid_size: tuple[int, int],
    mask_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scores [N, L] (CPU, float32) for ``strategy``; pass them as ``noise`` to the model."""
    check_strategy(strategy, mask_ratio)
    return draw_scores(strategy, batch_size, grid_size, mask_ratio, generator)


def draw_scores(strategy: str, batch_size: int, grid_size: tuple[int, int], mask_ratio: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``mask_scores`` for a strategy and ratio already checked (e.g. by ``MaskRequest``)."""
    g = generator if generator is not None else make_generator(None)
    return _STRATEGIES[strategy](batch_size, grid_size, mask_ratio, g)


def sample_mask(
    strategy: str,
    batch_size: int,
    grid_size: tuple[int, int],
    mask_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary masks [N, h, w] (1 = removed) for ``strategy``, with the exact per-sample count."""
    scores = mask_scores(strategy, batch_size, grid_size, mask_ratio, generator)
    length = grid_size[0] * grid_size[1]
    mask = indices_from_scores(scores, num_kept(length, mask_ratio)).mask
    return mask.reshape(batch_size, *grid_size)


@register_strategy("random")
def _random_scores(n: int, grid: tuple[int, int], ratio: float, g: torch.Generator) -> torch.Tensor:
    # Uniform sampling without replacement: argsort of i.i.d. uniform noise (official).
    return torch.rand(n, grid[0] * grid[1], generator=g)


@register_strategy("grid")
def _grid_scores(n: int, grid: tuple[int, int], ratio: float, g: torch.Generator) -> torch.Tensor:
    # Keep the top-left patch of every 2x2 cell. On even grids that is exactly L/4 patches; on
    # odd grids the partial cells give a few extra candidates, trimmed at random.
    gh, gw = grid
    rows = torch.arange(gh)[:, None]
    cols = torch.arange(gw)[None, :]
    removed = ((rows % 2) + (cols % 2) > 0).float().reshape(1, -1)  # [1, L]
    return removed + 0.5 * torch.rand(n, gh * gw, generator=g)


@register_strategy("block")
def _block_scores(n: int, grid: tuple[int, int], ratio: float, g: torch.Generator) -> torch.Tensor:
    length = grid[0] * grid[1]
    n_mask = length - kept_count(length, ratio)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
    masks = np.stack([block_mask(grid, n_mask, rng) for _ in range(n)])  # [N, h, w] bool
    # Covered patches score above every uncovered one, so exactly the covered ones are removed.
    scores = masks.reshape(n, -1) + rng.uniform(0, 0.5, (n, length))
    return torch.from_numpy(scores).float()


BLOCK_MIN_AREA = 16  # BEiT pretraining's min_mask_patches_per_block
BLOCK_MIN_ASPECT = 0.3  # aspect ratios are log-uniform in [0.3, 1 / 0.3]
BLOCK_TRIES = 10  # placements tried per rectangle before BEiT gives up


def block_mask(grid: tuple[int, int], n_mask: int, rng: np.random.Generator) -> np.ndarray:
    """BEiT's block-wise mask (``beit/masking_generator.py``) with exactly ``n_mask`` patches.

    First BEiT's own loop, rule for rule: while patches remain, draw a rectangle whose area is
    uniform between ``BLOCK_MIN_AREA`` and the number still to cover and whose aspect ratio is
    log-uniform in [0.3, 1/0.3], strictly smaller than the grid on both sides; a placement is
    taken only if it adds between 1 and ``remaining`` new patches (so near the end it grows the
    existing blobs instead of starting new small ones). After ``BLOCK_TRIES`` failed placements
    BEiT stops; that leaves it a few patches short in about a third of the masks at 14x14 (0.5 to
    0.7 patches on average). We then add the missing patches one at a time at random spots
    4-adjacent to the mask (a seed spot anywhere if nothing is masked yet), which grows the
    blobs BEiT drew and never starts a new one. Returns a bool array [h, w], True = removed.
    """
    gh, gw = grid
    mask = np.zeros((gh, gw), dtype=bool)
    count = 0
    while count < n_mask:
        added = _place_block(mask, n_mask - count, rng)
        if added == 0:
            break  # where BEiT stops
        count += added
    _grow_to(mask, n_mask - count, rng)
    return mask


def _place_block(mask: np.ndarray, remaining: int, rng: np.random.Generator) -> int:
    """One BEiT ``_mask`` call: up to ``BLOCK_TRIES`` rectangles; returns the patches added."""
    gh, gw = mask.shape
    log_aspect = (math.log(BLOCK_MIN_ASPECT), math.log(1 / BLOCK_MIN_ASPECT))
    for _ in range(BLOCK_TRIES):
        # as Python's random.uniform(16, remaining): below 16 remaining, area is in [remaining, 16]
        area = BLOCK_MIN_AREA + (remaining - BLOCK_MIN_AREA) * rng.random()
        aspect = math.exp(rng.uniform(*log_aspect))
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        if not (h < gh and w < gw):
            continue
        top = int(rng.integers(0, gh - h + 1))
        left = int(rng.integers(0, gw - w + 1))
        window = mask[top : top + h, left : left + w]
        fresh = h * w - int(window.sum())
        if 0 < fresh <= remaining:
            window[...] = True
            return fresh
    return 0


def _grow_to(mask: np.ndarray, missing: int, rng: np.random.Generator) -> None:
    """Cover ``missing`` more patches, each 4-adjacent to the mask (in place)."""
    for _ in range(missing):
        near = np.zeros_like(mask)
        near[1:] |= mask[:-1]
        near[:-1] |= mask[1:]
        near[:, 1:] |= mask[:, :-1]
        near[:, :-1] |= mask[:, 1:]
        spots = np.flatnonzero(near & ~mask)
        if spots.size == 0:  # nothing masked yet (or the mask fills the grid's free parts)
            spots = np.flatnonzero(~mask)
        mask.flat[int(rng.choice(spots))] = True
