"""``mae data build-labelled`` on a tiny fake extracted tuxpaint package (no network)."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mae_core.evaluation.data import labelled_classes
from mae_core.train.manifest import manifest_summary
from mae_tools.corpus import CorpusError, ExtractedPackage
from mae_tools.corpus import labelled as L

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tuxpaint-stamps

Files: *
Copyright: 2002-2022 Someone
License: GPL-2

Files: stamps/animals/birds/special*
Copyright: 2020 A Photographer
License: CC-BY-SA-4.0
"""

CLASSES = (
    L.LabelledClass("birds", ("animals/birds",)),
    L.LabelledClass("fruit", ("food/fruit",)),
    L.LabelledClass("rare", ("animals/rare",)),  # too few stamps: left out
)


def stamp(seed: int, w: int = 90, h: int = 60, colour: tuple[int, int, int] | None = None):
    """An opaque coloured ellipse with a little noise on a transparent canvas."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    inside = ((x - w / 2) / (w * 0.45)) ** 2 + ((y - h / 2) / (h * 0.45)) ** 2 <= 1
    rgb = np.asarray(colour or rng.integers(0, 255, 3), np.float64) + rng.normal(0, 10, (h, w, 3))
    return np.dstack([np.clip(rgb, 0, 255), np.where(inside, 255, 0)]).astype(np.uint8)


def save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_fake_tuxpaint(root: Path) -> Path:
    """``dpkg -x`` layout: stamps in category folders, plus the files the builder must skip."""
    stamps = root / L.STAMPS_ROOT
    for i in range(3):
        save(stamp(i, colour=(200, 40, 40)), stamps / f"animals/birds/bird{i}.png")
    save(stamp(3), stamps / "animals/birds/water/bird3.png")  # sub-folders count
    save(stamp(9), stamps / "animals/birds/special_duck.png")
    save(stamp(10), stamps / "animals/birds/Odd Name!.png")
    (stamps / "animals/birds/bird0.svg").write_text("<svg/>")  # vector copies are skipped
    (stamps / "animals/birds/bird0.txt").write_text("A bird.")
    save(stamp(11, 10, 10), stamps / "animals/birds/icon.png")  # too small to be an object
    save(np.zeros((50, 50, 4), np.uint8), stamps / "animals/birds/blank.png")  # all transparent
    for i in range(4):
        save(stamp(20 + i, 60, 120, colour=(40, 160, 40)), stamps / f"food/fruit/pear{i}.png")
    save(stamp(0, colour=(200, 40, 40)), stamps / "food/fruit/same_as_bird0.png")  # duplicate
    save(stamp(30), stamps / "animals/rare/only.png")
    doc = root / "usr/share/doc" / L.DEMO_PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    with gzip.open(doc / "changelog.Debian.gz", "wt") as f:
        f.write("tuxpaint-stamps (2022.06.04-1) unstable; urgency=medium\n")
    return root


def build(tmp_path: Path, out: Path, **kw):
    root = make_fake_tuxpaint(tmp_path / "pkg")
    pkg = ExtractedPackage.from_root(L.DEMO_PACKAGE, L.package_version(root, L.DEMO_PACKAGE), root)
    return L.build_labelled_from_extracted(pkg, out, classes=CLASSES, size=64,
                                           min_per_class=3, **kw)


def test_builds_class_folders_manifest_and_licences(tmp_path):
    out = tmp_path / "demo"
    m = build(tmp_path, out)
    assert m["classes"] == {"birds": 6, "fruit": 4}
    assert m["dropped_classes"] == {"rare": 1}
    assert m["packages"][0]["rejected"] == {"duplicate": 1, "too-small": 2}
    assert m["packages"][0]["version"] == "2022.06.04-1"
    # The layout is what the evaluation code reads as a labelled dataset.
    assert labelled_classes(out) == {"birds": 6, "fruit": 4}
    assert sorted(p.name for p in out.iterdir()) == ["LICENSES.md", "birds", "fruit",
                                                      "manifest.json"]
    by_source = {e["source_path"].rsplit("/", 1)[-1]: e for e in m["entries"]}
    assert by_source["special_duck.png"]["licence"] == "CC-BY-SA-4.0"
    assert by_source["special_duck.png"]["licence_basis"] == "exact"
    assert by_source["pear0.png"]["licence"] == "GPL-2"
    assert by_source["Odd Name!.png"]["path"] == "birds/odd-name.png"
    assert m["packages"][0]["licences_used"] == ["CC-BY-SA-4.0", "GPL-2"]
    assert json.loads((out / "manifest.json").read_text()) == m
    licences_md = (out / "LICENSES.md").read_text()
    for e in m["entries"]:
        assert f"| {e['path']} | {e['source_path']} | {e['licence']} |" in licences_md
    # A checkpoint card's data section can read this manifest too.
    assert manifest_summary(m)["sources"][0]["package"] == L.DEMO_PACKAGE


def test_images_are_opaque_squares_with_the_object_centred(tmp_path):
    out = tmp_path / "demo"
    build(tmp_path, out)
    with Image.open(out / "birds" / "bird0.png") as im:
        assert im.mode == "RGB" and im.size == (64, 64)
        px = np.asarray(im).astype(int)
    assert np.abs(px[0, 0] - np.array(L.BACKGROUND)).max() <= 6  # corner: background
    assert px[32, 32, 0] > 150 and px[32, 32, 1] < 90  # centre: the red bird
    # The object's long side spans about FILL of the square.
    red = (px[..., 0] - px[..., 1]) > 80
    cols = np.nonzero(red.any(axis=0))[0]
    assert abs((cols[-1] - cols[0] + 1) - L.FILL * 64) <= 3


def test_rebuild_is_identical_and_replaces_only_its_own_output(tmp_path):
    out = tmp_path / "demo"
    first = build(tmp_path, out)
    stale = out / "birds" / "stale.png"
    stale.write_bytes(b"x")
    second = L.build_labelled_from_extracted(
        ExtractedPackage.from_root(L.DEMO_PACKAGE, "2022.06.04-1", tmp_path / "pkg"),
        out, classes=CLASSES, size=64, min_per_class=3)
    assert second == first and not stale.exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep")
    with pytest.raises(CorpusError, match="refusing"):
        L.build_labelled_from_extracted(
            ExtractedPackage.from_root(L.DEMO_PACKAGE, "x", tmp_path / "pkg"), precious,
            classes=CLASSES, size=64, min_per_class=3)
    assert (precious / "thesis.tex").read_text() == "keep"


def test_too_few_classes_and_bad_options_are_clear_errors(tmp_path):
    pkg = ExtractedPackage.from_root(L.DEMO_PACKAGE, "x", make_fake_tuxpaint(tmp_path / "pkg"))
    with pytest.raises(CorpusError, match="only 1 class"):  # fruit has 4 < 5, rare 1
        L.build_labelled_from_extracted(pkg, tmp_path / "a", classes=CLASSES, size=64,
                                        min_per_class=5)
    assert not (tmp_path / "a").exists()
    with pytest.raises(CorpusError, match="size"):
        L.build_labelled_from_extracted(pkg, tmp_path / "b", size=8)
    with pytest.raises(CorpusError, match="unique plain folder names"):
        L.build_labelled_from_extracted(
            pkg, tmp_path / "c", classes=(L.LabelledClass("a/b", ("x",)),) * 2)
    with pytest.raises(CorpusError, match="--from"):
        L.build_labelled(tmp_path / "d", source=tmp_path / "missing.deb")


def test_demo_table_names_real_folders_with_enough_classes():
    assert 5 <= len(L.DEMO_CLASSES) <= 8
    assert len({c.name for c in L.DEMO_CLASSES}) == len(L.DEMO_CLASSES)
    assert all(c.folders and all(not f.startswith("/") for f in c.folders) for c in L.DEMO_CLASSES)


def test_cli_builds_from_an_extracted_folder(tmp_path, capsys):
    from mae_cli import data as data_cli

    root = make_fake_tuxpaint(tmp_path / "pkg")
    # The real birds/fruit folders exist in the fake package; the others are missing.
    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "build-labelled", "--out", str(tmp_path / "out"),
                              "--from", str(root), "--size", "48", "--min-per-class", "3"])
    assert args.func is data_cli.run_build_labelled
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "birds" in text and "10 images in 2 classes" in text and "2022.06.04-1" in text
    assert labelled_classes(tmp_path / "out") == {"birds": 6, "fruit": 4}
