"""The officially released MAE checkpoints (facebookresearch/mae README), by short name.

md5 prefixes are the ones the official README prints; the visualize files have none published,
so they are checked only for size and loadability.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownModelError

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/mae"


@dataclass(frozen=True)
class OfficialCheckpoint:
    name: str
    path: str  # relative to the base URL
    md5_prefix: str | None
    description: str

    def url(self, base_url: str = OFFICIAL_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.path}"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    c.name: c
    for c in (
        OfficialCheckpoint("mae_pretrain_vit_base", "pretrain/mae_pretrain_vit_base.pth", "8cad7c",
                           "ViT-Base encoder, 1600 epochs, norm-pix (encoder only)"),
        OfficialCheckpoint("mae_pretrain_vit_large", "pretrain/mae_pretrain_vit_large.pth", "b8b06e",
                           "ViT-Large encoder, 1600 epochs, norm-pix (encoder only)"),
        OfficialCheckpoint("mae_pretrain_vit_huge", "pretrain/mae_pretrain_vit_huge.pth", "9bdbb0",
                           "ViT-Huge encoder, 1600 epochs, norm-pix (encoder only)"),
        OfficialCheckpoint("mae_visualize_vit_large", "visualize/mae_visualize_vit_large.pth", None,
                           "ViT-Large encoder + decoder, pixel targets (the official demo's model)"),
        OfficialCheckpoint("mae_visualize_vit_large_ganloss",
                           "visualize/mae_visualize_vit_large_ganloss.pth", None,
                           "ViT-Large encoder + decoder, pixel targets + GAN loss"),
        OfficialCheckpoint("mae_visualize_vit_base", "visualize/mae_visualize_vit_base.pth", None,
                           "ViT-Base encoder + decoder, pixel targets (not in the official README)"),
        OfficialCheckpoint("mae_visualize_vit_huge", "visualize/mae_visualize_vit_huge.pth", None,
                           "ViT-Huge encoder + decoder, pixel targets (not in the official README)"),
    )
}


def get_official(name: str) -> OfficialCheckpoint:
    try:
        return OFFICIAL_CHECKPOINTS[name]
    except KeyError:
        raise UnknownModelError(
            f"no official checkpoint named {name!r}; choose one of "
            f"{', '.join(sorted(OFFICIAL_CHECKPOINTS))}"
        ) from None
