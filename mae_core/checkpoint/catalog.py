"""Downloadable checkpoints: the official facebookresearch/mae releases and the Hugging Face
``facebook/vit-mae-*`` models, by id; a JSON file can add or override entries.

md5 prefixes of the official files are the ones the official README prints; the visualize files
have none published, so they are checked for loadability (and size, when the host sends one).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, UnknownModelError

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/mae"
CC_BY_NC = "CC-BY-NC 4.0 (facebookresearch/mae weights: non-commercial use only)"
APACHE = "Apache-2.0 (the Hugging Face model card's licence)"
URL, HUGGINGFACE = "url", "huggingface"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Environment: a base URL that replaces the official host (air-gapped labs), and a JSON file of
# extra or overriding entries.
MIRROR_ENV, CATALOG_ENV = "MAE_CHECKPOINT_MIRROR", "MAE_CHECKPOINT_CATALOG"
LEGACY_MIRROR_ENV = "MAE_CHECKPOINT_BASE_URL"


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable checkpoint.

    Attributes:
        name: the id it gets in the checkpoint list.
        path: for ``source="url"``: a path relative to the (mirror) base URL, or an absolute URL;
            for ``source="huggingface"``: the Hub repository (``facebook/vit-mae-large``).
        md5_prefix: the published md5 prefix, if any (checked before the file is placed).
        description: what the weights are.
        source: ``url`` (plain HTTP with Range resume) or ``huggingface`` (huggingface_hub, which
            honours HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE).
        licence: under which terms the weights may be used.
        has_decoder: whether the file can reconstruct images (encoder-only files are for
            evaluation).
        good_for: one line on what to use it for.
        size_bytes: expected size, when known (shown before downloading).
        sha256: full sha256 of the file, when known (checked like the md5 prefix).
    """

    name: str
    path: str
    md5_prefix: str | None
    description: str
    source: str = URL
    licence: str = CC_BY_NC
    has_decoder: bool = True
    good_for: str = ""
    size_bytes: int | None = None
    sha256: str | None = None

    def url(self, base_url: str | None = None) -> str:
        if self.path.startswith(("http://", "https://")):
            return self.path
        return f"{(base_url or mirror_base_url()).rstrip('/')}/{self.path}"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OfficialCheckpoint = CatalogEntry  # the name this class had when the catalog held only official files

_RECONSTRUCT = "reconstruction (the paper's Figure 4 pictures) and evaluation"
_EVALUATE = "no decoder: cannot reconstruct, usable for evaluation (linear probe, fine-tuning)"

OFFICIAL_CHECKPOINTS: dict[str, CatalogEntry] = {
    c.name: c
    for c in (
        CatalogEntry("mae_pretrain_vit_base", "pretrain/mae_pretrain_vit_base.pth", "8cad7c",
                     "ViT-Base encoder, 1600 epochs, norm-pix (encoder only)", has_decoder=False,
                     good_for=_EVALUATE),
        CatalogEntry("mae_pretrain_vit_large", "pretrain/mae_pretrain_vit_large.pth", "b8b06e",
                     "ViT-Large encoder, 1600 epochs, norm-pix (encoder only)", has_decoder=False,
                     good_for=_EVALUATE),
        CatalogEntry("mae_pretrain_vit_huge", "pretrain/mae_pretrain_vit_huge.pth", "9bdbb0",
                     "ViT-Huge encoder, 1600 epochs, norm-pix (encoder only)", has_decoder=False,
                     good_for=_EVALUATE),
        CatalogEntry("mae_visualize_vit_large", "visualize/mae_visualize_vit_large.pth", None,
                     "ViT-Large encoder + decoder, pixel targets (the official demo's model)",
                     good_for="the sharpest reconstructions: " + _RECONSTRUCT),
        CatalogEntry("mae_visualize_vit_large_ganloss",
                     "visualize/mae_visualize_vit_large_ganloss.pth", None,
                     "ViT-Large encoder + decoder, pixel targets + GAN loss",
                     good_for="crisper texture than the pixel-loss model: " + _RECONSTRUCT),
        CatalogEntry("mae_visualize_vit_base", "visualize/mae_visualize_vit_base.pth", None,
                     "ViT-Base encoder + decoder, pixel targets (not in the official README)",
                     good_for="faster than ViT-Large on a CPU: " + _RECONSTRUCT),
        CatalogEntry("mae_visualize_vit_huge", "visualize/mae_visualize_vit_huge.pth", None,
                     "ViT-Huge encoder + decoder, pixel targets (not in the official README)",
                     good_for=_RECONSTRUCT),
    )
}

HUGGINGFACE_CHECKPOINTS: dict[str, CatalogEntry] = {
    c.name: c
    for c in (
        CatalogEntry(f"hf-vit-mae-{size}", f"facebook/vit-mae-{size}", None,
                     f"ViT-{size.title()} encoder + decoder, norm-pix targets (Hugging Face "
                     f"facebook/vit-mae-{size}, converted from the official weights)",
                     source=HUGGINGFACE, licence=APACHE,
                     good_for="reconstruction (shown with each patch's true mean and variance, "
                              "as norm-pix models need) and evaluation")
        for size in ("base", "large", "huge")
    )
}


def get_official(name: str) -> CatalogEntry:
    try:
        return OFFICIAL_CHECKPOINTS[name]
    except KeyError:
        raise UnknownModelError(
            f"no official checkpoint named {name!r}; choose one of "
            f"{', '.join(sorted(OFFICIAL_CHECKPOINTS))}"
        ) from None


def mirror_base_url() -> str:
    """``$MAE_CHECKPOINT_MIRROR`` (or the older ``$MAE_CHECKPOINT_BASE_URL``), else the official host."""
    return os.environ.get(MIRROR_ENV) or os.environ.get(LEGACY_MIRROR_ENV) or OFFICIAL_BASE_URL


def load_catalog(extra_file: str | Path | None = None) -> dict[str, CatalogEntry]:
    """Every downloadable entry by id: official, Hugging Face, then ``extra_file`` (default
    ``$MAE_CHECKPOINT_CATALOG``), a JSON list of objects with the ``CatalogEntry`` fields
    (``name`` or ``id``, ``url`` or ``path``, ``md5_prefix``/``sha256``, ``size_bytes``,
    ``format``-free: the file's layout is detected on load)."""
    entries = {**OFFICIAL_CHECKPOINTS, **HUGGINGFACE_CHECKPOINTS}
    extra_file = extra_file or os.environ.get(CATALOG_ENV)
    if extra_file:
        entries.update({e.name: e for e in read_catalog_file(Path(extra_file))})
    return entries


def read_catalog_file(path: Path) -> list[CatalogEntry]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"checkpoint catalog {path} is not readable JSON: {exc}") from None
    if isinstance(items, dict):
        items = items.get("checkpoints", [])
    if not isinstance(items, list):
        raise InvalidParameterError(f"checkpoint catalog {path} must hold a list of entries")
    return [_entry_from_json(item, path) for item in items]


def _entry_from_json(item: Any, path: Path) -> CatalogEntry:
    if not isinstance(item, dict):
        raise InvalidParameterError(f"checkpoint catalog {path}: every entry must be an object")
    data = dict(item)
    data.setdefault("name", data.pop("id", None))
    data.setdefault("path", data.pop("url", None))
    data.setdefault("md5_prefix", None)
    data.setdefault("description", "")
    data.pop("format", None)
    if "license" in data:
        data.setdefault("licence", data.pop("license"))
    known = {f.name for f in dataclasses.fields(CatalogEntry)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParameterError(f"checkpoint catalog {path}: unknown fields {unknown}")
    if not isinstance(data["name"], str) or not ID_PATTERN.match(data["name"]):
        raise InvalidParameterError(f"checkpoint catalog {path}: entry id {data['name']!r} must be "
                                    "letters, digits, '.', '_' or '-'")
    if not isinstance(data["path"], str) or not data["path"]:
        raise InvalidParameterError(f"checkpoint catalog {path}: entry {data['name']!r} needs a url")
    if data.get("source", URL) not in (URL, HUGGINGFACE):
        raise InvalidParameterError(f"checkpoint catalog {path}: source must be {URL!r} or "
                                    f"{HUGGINGFACE!r}")
    return CatalogEntry(**data)
