"""Corpus builder: the pure parts, on synthetic images and a fake extracted package (no network)."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mae_tools import corpus as C
from mae_tools.corpus import extract as corpus_extract
from mae_core.errors import MAEError

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake-photos

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: upstream/photos/special.jpg
Copyright: 2021 A Photographer
License: CC-BY-SA-4.0

Files: 16.04/moved_by_someone.jpg
Copyright: 2021 Someone Else
License: CC0-1.0

License: GPL-2+
 This program is free software.
"""


def natural_image(seed: int, width: int = 320, height: int = 256) -> np.ndarray:
    """Colourful low-frequency structure plus texture: passes the photo filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.full((height, width, 3), 128.0)
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 4.0, 2)
            phase = rng.uniform(0, 2 * np.pi)
            img[..., c] += rng.uniform(15, 40) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def stamp_image(seed: int, side: int = 200) -> np.ndarray:
    """A textured opaque ellipse on a transparent background (an object cut-out)."""
    rgb = natural_image(seed, side, side)
    y, x = np.mgrid[0:side, 0:side]
    inside = ((x - side / 2) / (side * 0.4)) ** 2 + ((y - side / 2) / (side * 0.3)) ** 2 <= 1
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return np.dstack([rgb, alpha])


def save(arr: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def make_fake_package(root: Path) -> C.ExtractedPackage:
    """A folder laid out like ``dpkg -x`` output, with photos, junk, a duplicate and a stamp."""
    photos = root / "usr/share/backgrounds/fake"
    for i in range(8):
        save(natural_image(i), photos / f"photo{i}.jpg", quality=95)
    # A resized, recompressed copy of photo0 under another name: must be dropped as a duplicate.
    copy = Image.fromarray(natural_image(0)).resize((285, 228), Image.Resampling.BICUBIC)
    save(np.asarray(copy), root / "usr/share/other/copy_of_photo0.png")
    save(natural_image(20), photos / "special.jpg", quality=95)
    save(natural_image(21, 400, 300), photos / "moved_by_someone.jpg", quality=95)
    save(np.full((256, 256, 3), (40, 90, 200), np.uint8), photos / "flat.png")
    save(natural_image(30, 150, 120), photos / "tiny.jpg")
    save(natural_image(31, 900, 300), photos / "panorama.jpg", quality=95)  # 3:1 -> tiles
    (photos / "vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    save(stamp_image(40), root / "usr/share/stamps/thing.png")
    save(stamp_image(41), root / "usr/share/stamps/other.png")
    doc = root / "usr/share/doc/fake-photos"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    return C.ExtractedPackage.from_root("fake-photos", "1.0-1", root)


# --- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(300, 500), (1000, 240), (256, 256), (230, 1200)])
def test_resize_short_side(size):
    img = Image.fromarray(natural_image(1, *size))
    out = C.resize_short_side(img, 64)
    assert min(out.size) == 64
    assert out.size[0] / out.size[1] == pytest.approx(size[0] / size[1], rel=0.03)


def test_dedupe_collapses_resized_copy_but_keeps_different_images():
    a = natural_image(0)
    b = np.asarray(Image.fromarray(a).resize((250, 200), Image.Resampling.BICUBIC))
    small_a = np.asarray(C.resize_short_side(Image.fromarray(a), 128))
    small_b = np.asarray(C.resize_short_side(Image.fromarray(b), 128))
    other = np.asarray(C.resize_short_side(Image.fromarray(natural_image(5)), 128))
    assert C.pixel_hash(small_a) != C.pixel_hash(small_b)  # not an exact duplicate
    dedupe = C.Deduplicator()
    assert dedupe.check("a", small_a) is None
    assert dedupe.check("b", small_b) == "a"
    assert dedupe.check("a-again", small_a.copy()) == "a"  # exact duplicate
    assert dedupe.check("other", other) is None


def test_average_hash_is_stable_under_resizing():
    a = natural_image(3)
    b = np.asarray(Image.fromarray(a).resize((160, 128), Image.Resampling.BILINEAR))
    assert C.hamming(C.average_hash(a), C.average_hash(b)) <= 4


def test_split_is_deterministic_and_near_the_fraction():
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    splits = [C.split_for_hash(h, 0.1) for h in hashes]
    assert splits == [C.split_for_hash(h, 0.1) for h in hashes]
    share = splits.count("heldout") / len(splits)
    assert 0.08 < share < 0.12
    assert all(C.split_for_hash(h, 0.0) == "train" for h in hashes[:100])
    # A larger fraction only moves images into held-out, never out of it.
    bigger = [C.split_for_hash(h, 0.3) for h in hashes]
    assert all(b == "heldout" for s, b in zip(splits, bigger) if s == "heldout")
    with pytest.raises(C.CorpusError):
        C.split_for_hash(hashes[0], 1.0)


def test_naturalness_filter():
    photo = np.asarray(C.resize_short_side(Image.fromarray(natural_image(2)), 128))
    assert C.looks_natural(C.naturalness_stats(photo)) is None
    flat = np.full((128, 128, 3), (30, 120, 60), np.uint8)
    assert C.looks_natural(C.naturalness_stats(flat)) == "flat"
    two_colour = np.zeros((128, 128, 3), np.uint8)
    two_colour[:, 64:] = (250, 200, 20)
    two_colour[:, :64] = (20, 40, 200)
    assert C.looks_natural(C.naturalness_stats(two_colour)) in {"few-colours", "smooth"}
    grey = np.repeat(photo.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert C.looks_natural(C.naturalness_stats(grey)) == "greyscale"


def test_composite_stamp_blends_clips_and_flips():
    bg = np.zeros((64, 64, 3), np.uint8)
    bg[...] = (0, 0, 255)
    stamp = np.zeros((10, 20, 4), np.uint8)
    stamp[..., 0] = 255  # red
    stamp[:, :10, 3] = 255  # left half opaque
    stamp[:, 10:, 3] = 0  # right half transparent
    out = C.composite_stamp(bg, stamp, (5, 5), height=10)
    assert out.shape == bg.shape and out.dtype == np.uint8
    assert tuple(out[10, 7]) == (255, 0, 0)  # opaque part
    assert tuple(out[10, 20]) == (0, 0, 255)  # transparent part
    assert tuple(out[40, 40]) == (0, 0, 255)  # untouched
    assert np.array_equal(bg[..., 2], np.full((64, 64), 255))  # input not modified
    flipped = C.composite_stamp(bg, stamp, (5, 5), height=10, flip=True)
    assert tuple(flipped[10, 7]) == (0, 0, 255) and tuple(flipped[10, 20]) == (255, 0, 0)
    half = stamp.copy()
    half[..., 3] = 128
    mixed = C.composite_stamp(bg, half, (0, 0), height=10)
    assert 120 <= mixed[5, 5, 0] <= 135 and 120 <= mixed[5, 5, 2] <= 135
    # Hanging over the edge is clipped; fully outside leaves the background unchanged.
    edge = C.composite_stamp(bg, stamp, (-5, 58), height=10)
    assert tuple(edge[60, 2]) == (255, 0, 0)
    assert np.array_equal(C.composite_stamp(bg, stamp, (100, 100), height=10), bg)


def test_tile_boxes_cut_panoramas_only():
    assert C.tile_boxes(400, 256) == [(0, 0, 400, 256)]
    boxes = C.tile_boxes(768, 256)  # 3:1
    assert len(boxes) >= 2
    assert all(b[3] - b[1] == 256 and b[2] - b[0] == 384 for b in boxes)
    assert boxes[0][0] == 0 and boxes[-1][2] == 768
    assert all(b[2] - b[0] == 256 for b in C.tile_boxes(256, 900))


# --- licences ----------------------------------------------------------------------------------


def test_copyright_parsing_and_licence_matching():
    info = C.parse_copyright(COPYRIGHT)
    assert info.machine_readable
    assert info.licences == ("CC-BY-SA-4.0", "CC0-1.0", "GPL-2+")
    assert C.match_licence(info, "/usr/share/x/upstream/photos/special.jpg") == (
        "CC-BY-SA-4.0",
        "exact",
    )
    assert C.match_licence(info, "/usr/share/x/upstream/photos/special.webp") == (
        "CC-BY-SA-4.0",
        "converted",
    )
    assert C.match_licence(info, "/usr/share/backgrounds/moved_by_someone.jpg") == (
        "CC0-1.0",
        "basename",
    )
    assert C.match_licence(info, "/usr/share/backgrounds/other.jpg") == ("GPL-2+", "catch-all")
    free_form = C.parse_copyright("This package is under the GNU General Public License.\n")
    assert not free_form.machine_readable and free_form.licences == ("GPL",)
    assert C.match_licence(free_form, "/a/b.jpg") == ("GPL", "package")


def test_archive_members_match_source_patterns():
    # ufoai's copyright names base/textures/... for files that ship inside base/0textures.pk3.
    info = C.parse_copyright(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2002 Team\nLicense: GPL-2+\n\n"
        "Files:\n base/textures/tex_nature/grass.png\n base/textures/tex_pics/*\n"
        "Copyright: 2010 A Photographer\nLicense: CC-BY-3.0\n"
    )
    base = "/usr/share/games/ufoai/base/0textures.pk3.d/textures"
    assert C.match_licence(info, f"{base}/tex_nature/grass.png") == ("CC-BY-3.0", "exact")
    assert C.match_licence(info, f"{base}/tex_pics/elder.jpg") == ("CC-BY-3.0", "exact")
    assert C.match_licence(info, f"{base}/tex_nature/rock.png") == ("GPL-2+", "catch-all")
    # A folder that merely ends in ".d" is not an archive: nothing is left out of its path.
    assert C.match_licence(info, "/usr/share/base/conf.d/textures/tex_pics/a.jpg") == (
        "GPL-2+",
        "catch-all",
    )


def test_missing_copyright_is_unknown(tmp_path):
    info = C.read_copyright(tmp_path, "nothing")
    assert info.licences == ("unknown",)


# --- Qt resources ------------------------------------------------------------------------------


def _build_rcc(files: dict[str, bytes]) -> bytes:
    """A version-2 Qt resource file with one folder holding ``files`` (zlib-compressed)."""
    names = b""
    name_offsets = {}
    for name in ["dir", *files]:
        name_offsets[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    data = b""
    data_offsets = {}
    for name, payload in files.items():
        data_offsets[name] = len(data)
        packed = struct.pack(">I", len(payload)) + zlib.compress(payload)
        data += struct.pack(">I", len(packed)) + packed
    nodes = [
        struct.pack(">IHII", 0, 2, 1, 1) + b"\0" * 8,  # root: 1 child at index 1
        struct.pack(">IHII", name_offsets["dir"], 2, len(files), 2) + b"\0" * 8,
    ]
    for name in files:
        nodes.append(struct.pack(">IHHHI", name_offsets[name], 1, 0, 0, data_offsets[name]) + b"\0" * 8)
    tree = b"".join(nodes)
    header_len = 20
    tree_off = header_len
    data_off = tree_off + len(tree)
    names_off = data_off + len(data)
    header = b"qres" + struct.pack(">IIII", 2, tree_off, data_off, names_off)
    return header + tree + data + names


def test_unpack_qt_resources(tmp_path):
    png = tmp_path / "src.png"
    save(natural_image(7, 240, 240), png)
    rcc = tmp_path / "pkg/usr/share/app/rcc/things.rcc"
    rcc.parent.mkdir(parents=True)
    rcc.write_bytes(_build_rcc({"photo.png": png.read_bytes(), "notes.qml": b"Item {}"}))
    assert C.unpack_qt_resources_tree(tmp_path / "pkg") == 1
    out = rcc.with_name("things.rcc.d") / "dir" / "photo.png"
    assert out.read_bytes() == png.read_bytes()
    bad = tmp_path / "bad.rcc"
    bad.write_bytes(b"not a resource file")
    with pytest.raises(C.CorpusError):
        C.unpack_qt_resources(bad, tmp_path / "bad.d")


def test_unpack_zip_archives(tmp_path):
    import zipfile

    png = tmp_path / "src.png"
    save(natural_image(8, 240, 240), png)
    pk3 = tmp_path / "pkg/usr/share/games/g/base/0textures.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as z:
        z.writestr("textures/tex_nature/grass.png", png.read_bytes())
        z.writestr("textures/readme.txt", b"not an image")
        z.writestr("../escape.png", png.read_bytes())
    assert C.unpack_zip_archives_tree(tmp_path / "pkg") == 1
    out = pk3.with_name("0textures.pk3.d") / "textures" / "tex_nature" / "grass.png"
    assert out.read_bytes() == png.read_bytes()
    assert not (pk3.parent / "escape.png").exists() and not (pk3.parent.parent / "escape.png").exists()
    assert not list(pk3.with_name("0textures.pk3.d").rglob("*.txt"))
    bad = tmp_path / "bad.pk3"
    bad.write_bytes(b"not a zip")
    with pytest.raises(C.CorpusError):
        C.unpack_zip_archive(bad, tmp_path / "bad.d")
    # A broken archive is skipped by the tree walk, not fatal.
    assert C.unpack_zip_archives_tree(tmp_path) == 1


def test_default_rules_cover_new_texture_packages():
    ufo = C.PACKAGE_RULES["ufoai-textures"]
    base = "/usr/share/games/ufoai/base/0textures.pk3.d/textures"
    assert ufo.allows(f"{base}/tex_nature/grass.png")
    assert not ufo.allows(f"{base}/tex_nature/grass_nm.png")  # normal map
    assert not ufo.allows(f"{base}/tex_lights/lamp.png")
    assert not ufo.allows(f"{base}/tex_misc/crate_01.jpg")
    assert not ufo.allows("/usr/share/games/ufoai/base/pics/logo.png")
    assert ufo.max_photos == C.UFOAI_MAX_PHOTOS
    etr = C.PACKAGE_RULES["extremetuxracer-data"]
    assert etr.allows("/usr/share/games/etr/terrains/rock01.png")
    assert not etr.allows("/usr/share/games/etr/courses/extras/wild_ride/preview.png")
    colobot = C.PACKAGE_RULES["colobot-common-textures"]
    assert colobot.allows("/usr/share/games/colobot/textures/cloud02.png")
    assert not colobot.allows("/usr/share/games/colobot/textures/interface/button1.png")
    assert not colobot.allows("/usr/share/games/colobot/mods/AltTextures/textures/cloud02.png")
    assert set(C.PACKAGE_RULES) <= set(C.DEFAULT_PACKAGES)


# --- building from an extracted folder ---------------------------------------------------------


def test_build_from_extracted_is_deterministic(tmp_path):
    pkg = make_fake_package(tmp_path / "extracted" / "fake-photos")
    kwargs = dict(size=64, heldout_fraction=0.25, composites=6, seed=3, workers=1)
    m1 = C.build_corpus_from_extracted([pkg], tmp_path / "out1", **kwargs)
    m2 = C.build_corpus_from_extracted([pkg], tmp_path / "out2", **kwargs)
    text1 = (tmp_path / "out1" / "manifest.json").read_text()
    assert text1 == (tmp_path / "out2" / "manifest.json").read_text()
    assert m1.to_dict() == m2.to_dict() == json.loads(text1)
    # Two worker processes give the same result as one.
    C.build_corpus_from_extracted([pkg], tmp_path / "out3", **{**kwargs, "workers": 2})
    assert (tmp_path / "out3" / "manifest.json").read_text() == text1

    manifest = json.loads(text1)
    photos = [e for e in manifest["entries"] if e["kind"] == "photo"]
    sources = {e["source_path"] for e in photos}
    # 8 photos + special + moved + panorama; flat, tiny, svg and the resized copy are gone.
    assert len(sources) == 11
    assert not any("flat" in s or "tiny" in s or "copy_of" in s for s in sources)
    summary = manifest["packages"][0]
    assert summary["package"] == "fake-photos" and summary["version"] == "1.0-1"
    assert summary["rejected"]["duplicate-image"] == 1
    assert summary["rejected"]["flat"] == 1
    assert summary["rejected"]["too-small"] == 1
    assert summary["stamps"] == 2
    assert manifest["counts"]["total"] == len(manifest["entries"])
    # The panorama became several tiles that share its content hash and split.
    tiles = [e for e in photos if e["source_path"].endswith("panorama.jpg")]
    assert len(tiles) >= 2 and len({(e["content_hash"], e["split"]) for e in tiles}) == 1
    by_source = {e["source_path"]: e for e in photos}
    assert by_source["/usr/share/backgrounds/fake/photo1.jpg"]["licence"] == "GPL-2+"
    assert by_source["/usr/share/backgrounds/fake/moved_by_someone.jpg"]["licence"] == "CC0-1.0"

    entries = manifest["entries"]
    assert [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    for e in entries:
        path = tmp_path / "out1" / e["path"]
        assert e["path"].startswith(e["split"] + "/")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"]
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (e["width"], e["height"])
            assert min(im.size) == 64
    composites = [e for e in entries if e["kind"] == "composite"]
    assert len(composites) == 6
    for e in composites:
        assert 1 <= len(e["stamps"]) <= 3
        assert all(s["source_path"].startswith("/usr/share/stamps/") for s in e["stamps"])
        # A composite takes its background's split.
        assert e["split"] == by_source[e["source_path"]]["split"]
    assert manifest["params"]["seed"] == 3
    assert "date" not in json.dumps(manifest["entries"])


def test_heldout_split_follows_content_not_order(tmp_path):
    pkg = make_fake_package(tmp_path / "extracted" / "fake-photos")
    m = C.build_corpus_from_extracted(
        [pkg], tmp_path / "out", size=64, heldout_fraction=0.5, composites=0, workers=1
    )
    for e in m.entries:
        assert e.split == C.split_for_hash(e.content_hash, 0.5)
    assert set(m.counts()) == {"train", "heldout"}


def test_package_rules_include_exclude_and_cap(tmp_path):
    pkg = make_fake_package(tmp_path / "extracted" / "fake-photos")
    rules = {
        "fake-photos": C.PackageRule(
            include=("*/backgrounds/fake/*",), exclude=("*/photo7.jpg",), max_photos=4
        )
    }
    m = C.build_corpus_from_extracted(
        [pkg], tmp_path / "out", size=64, composites=0, rules=rules, workers=1
    )
    sources = {e.source_path for e in m.entries}
    assert len(sources) == 4
    assert all("/backgrounds/fake/" in s and not s.endswith("photo7.jpg") for s in sources)
    rejected = m.packages[0]["rejected"]
    assert rejected["over-package-cap"] == 11 - 1 - 4  # 11 usable, photo7 excluded, cap 4
    assert rejected["excluded-by-rule"] >= 3  # photo7, the copy, the stamps


def test_refuses_to_overwrite_a_folder_that_is_not_a_corpus(tmp_path):
    pkg = make_fake_package(tmp_path / "extracted" / "fake-photos")
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(C.CorpusError, match="refusing"):
        C.build_corpus_from_extracted([pkg], out, size=64, composites=0, workers=1)
    assert (out / "thesis.tex").exists()
    # An existing corpus is replaced as a whole.
    corpus = tmp_path / "corpus"
    C.build_corpus_from_extracted([pkg], corpus, size=64, composites=0, workers=1)
    stale = corpus / "train" / "stale.jpg"
    stale.write_bytes(b"x")
    C.build_corpus_from_extracted([pkg], corpus, size=64, composites=0, workers=1)
    assert not stale.exists() and (corpus / "manifest.json").exists()


def test_no_photos_is_a_clear_error(tmp_path):
    root = tmp_path / "empty"
    (root / "usr/share").mkdir(parents=True)
    pkg = C.ExtractedPackage.from_root("empty", "0", root)
    with pytest.raises(C.CorpusError, match="no usable photographs"):
        C.build_corpus_from_extracted([pkg], tmp_path / "out", size=64, workers=1)


def test_corpus_error_is_a_mae_error():
    assert issubclass(C.CorpusError, MAEError)


def test_missing_apt_get_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_extract.shutil, "which", lambda name: None)
    with pytest.raises(C.CorpusError, match="apt-get"):
        C.fetch_packages(["gnome-backgrounds"], tmp_path / "cache", tmp_path / "x")


def test_failed_download_is_recorded_and_others_continue(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_extract.shutil, "which", lambda name: "/usr/bin/" + name)
    good = make_fake_package(tmp_path / "extracted" / "fake-photos")

    def fake_download(package, cache_dir):
        if package == "missing":
            raise C.CorpusError("cannot download Debian package 'missing'")
        return tmp_path / f"{package}.deb"

    monkeypatch.setattr(corpus_extract, "download_deb", fake_download)
    monkeypatch.setattr(corpus_extract, "extract_deb", lambda deb, dest: good)
    extracted, failures = C.fetch_packages(["missing", "fake-photos"], tmp_path, tmp_path / "x")
    assert [p.name for p in extracted] == ["fake-photos"]
    assert [f.package for f in failures] == ["missing"]


def test_cli_registers_data_build_corpus(monkeypatch, tmp_path):
    import argparse

    from mae_cli import data as data_cli

    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["data", "build-corpus", str(tmp_path / "out"), "--size", "64", "--composites", "2",
         "--packages", "a", "b", "--heldout-fraction", "0.2", "--seed", "5"]
    )
    assert args.func is data_cli.run_build_corpus
    assert args.packages == ["a", "b"] and args.size == 64 and args.seed == 5

    pkg = make_fake_package(tmp_path / "extracted" / "fake-photos")
    seen = {}

    def fake_build(out, **kw):
        seen.update(kw)
        return C.build_corpus_from_extracted([pkg], out, size=kw["size"], composites=2, workers=1)

    monkeypatch.setattr(C, "build_corpus", fake_build)
    assert args.func(args) == 0
    assert seen["packages"] == ["a", "b"] and seen["heldout_fraction"] == 0.2
    table = data_cli.format_summary(json.loads((tmp_path / "out" / "manifest.json").read_text()))
    assert "fake-photos" in table and "total" in table
