"""Which Debian packages the corpus takes images from, and which of their files (hand-checked)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

DEFAULT_PACKAGES: tuple[str, ...] = (
    # Desktop wallpapers: large nature/landscape photographs.
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "sddm-theme-maldives",
    # Educational software: photo templates/backgrounds, ~230 photos of animals, monuments, tools
    # and places (GCompris, inside Qt resource files), and ~300 cut-out object photos (stamps).
    "gcompris-qt-data",
    "tuxpaint-data",
    "tuxpaint-stamps-default",
    "tuxtype-data",
    "tuxmath-data",
    "palapeli-data",
    "kalzium-data",
    # Sample images shipped with scientific Python libraries and OpenCV's examples.
    "python3-skimage",
    "python3-sklearn",
    "python-matplotlib-data",
    "opencv-doc",
    # Astronomy photographs (nebulae, galaxies), capped so they do not dominate.
    "stellarium-data",
    # Game textures photographed from real surfaces (brick, wood, doors, grass, rock, carpets;
    # UFO:AI's copyright file gives a licence per texture) and rendered mountain skyboxes.
    "ufoai-textures",
    "extremetuxracer-data",
    "colobot-common-textures",
)
"""Packages checked by hand (Debian 12). Left out on purpose: gnome-backgrounds, ukui-wallpapers,
sway-backgrounds, xfdesktop4-data, sddm-theme-elarun and lomiri-wallpapers ship only abstract or
vector art; kstars-data, marble-data and digikam-data only screenshots; ulcc clip art; pysiogame
drawn clip art; neverball-data screenshots; trigger-rally-data, nexuiz-textures (a .pk3 of game
art) mypaint-data and sddm-theme-maui nothing that passes the photo filter at 224 px."""


@dataclass(frozen=True)
class PackageRule:
    """Which files of a package are worth decoding.

    Patterns are ``fnmatch`` globs on the installed path (``/usr/share/...``).

    Attributes:
        include: if not empty, only paths matching one of these are used.
        exclude: paths matching any of these are skipped (abstract art, logos, screenshots).
        max_photos: keep at most this many photos (those with the smallest content hashes,
            so the choice is stable), for packages that would otherwise dominate.
        stamps: whether the package's cut-outs may be pasted into composites.
        backgrounds: whether the package's photos may serve as composite backgrounds.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_photos: int | None = None
    stamps: bool = True
    backgrounds: bool = True

    def allows(self, installed_path: str) -> bool:
        if any(fnmatch.fnmatchcase(installed_path, p) for p in GLOBAL_EXCLUDE + self.exclude):
            return False
        return not self.include or any(fnmatch.fnmatchcase(installed_path, p) for p in self.include)


GLOBAL_EXCLUDE: tuple[str, ...] = (
    "*/doc/HTML/*",  # KDE handbooks: screenshots
    "*/help/*",
    "*/icons/*",
    "*screenshot*",
)

UFOAI_MAX_PHOTOS = 400  # of ~550 usable textures: photos of places stay the majority

_PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip

PACKAGE_RULES: dict[str, PackageRule] = {
    "mate-backgrounds": PackageRule(include=("*/backgrounds/mate/nature/*",)),
    "plasma-workspace-wallpapers": PackageRule(
        include=tuple(f"*/wallpapers/{name}/contents/images/*" for name in _PLASMA_PHOTOS)
    ),
    "lomiri-wallpapers-16.04": PackageRule(exclude=("*/umang_by_*",)),
    "lomiri-wallpapers-20.04": PackageRule(exclude=("*/Fossa_by_*", "*/Painting-Colors_by_*")),
    "sddm-theme-maldives": PackageRule(include=("*/maldives/background.jpg",)),
    # GCompris cut-outs are mostly jigsaw pieces of paintings: not objects.
    "gcompris-qt-data": PackageRule(
        include=("*.rcc.d/*",), exclude=("*/lang.rcc.d/*",), stamps=False
    ),
    "tuxpaint-data": PackageRule(include=("*/tuxpaint/templates/*", "*/tuxpaint/starters/*")),
    "tuxpaint-stamps-default": PackageRule(exclude=("*/cartoon/*", "*/symbols/*")),
    "tuxtype-data": PackageRule(
        include=("*/images/kcas*", "*/images/hidden.jpg", "*/images/photo.png")
    ),
    "tuxmath-data": PackageRule(include=("*/images/backgrounds/*",), backgrounds=False),
    "palapeli-data": PackageRule(include=("*/palapeli/collection/*",)),
    "kalzium-data": PackageRule(include=("*/kalzium/data/toolpics/*",)),
    "python3-skimage": PackageRule(include=("*/skimage/data/*",)),
    "python3-sklearn": PackageRule(include=("*/sklearn/datasets/images/*",)),
    "python-matplotlib-data": PackageRule(include=("*/mpl-data/sample_data/*",)),
    "opencv-doc": PackageRule(
        include=("*/opencv-doc/examples/data/*",),
        exclude=("*/WindowsLogo.*", "*/sudoku.*", "*/pca_test*", "*/pic[0-9].*", "*/lena*"),
    ),
    "stellarium-data": PackageRule(
        include=("*/nebulae/default/*",), max_photos=100, backgrounds=False
    ),
    # Normal/gloss/specular maps (*_nm, *_gm, ...) are not pictures; lights, animations, tech
    # panels, alien and UFO hulls and vehicles are game graphics; crates repeat one design.
    "ufoai-textures": PackageRule(
        include=("*/0textures.pk3.d/textures/*",),
        exclude=(
            "*_[a-z]m.*", "*/tex_lights/*", "*/tex_anim/*", "*/tex_tech/*", "*/tex_ufo/*",
            "*/tex_alienb/*", "*/tex_vehicles/*", "*crate*",
        ),
        max_photos=UFOAI_MAX_PHOTOS,
        stamps=False,
    ),
    # Ground textures and skyboxes; course previews are screenshots.
    "extremetuxracer-data": PackageRule(
        include=("*/etr/terrains/*", "*/etr/env/*"), stamps=False
    ),
    # Clouds, ground and a Mars map strip; the rest are UI atlases and object skins.
    "colobot-common-textures": PackageRule(
        include=tuple(
            f"*/games/colobot/textures/{name}*"
            for name in ("cloud", "desert", "dirty", "green", "mars", "roc", "water", "chili")
        ),
        stamps=False,
    ),
}
