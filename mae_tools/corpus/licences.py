"""Licences: reading Debian copyright files and matching a licence to each installed file."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyrightInfo:
    """Licence facts read from one package's ``/usr/share/doc/PKG/copyright``.

    Attributes:
        licences: sorted short licence names found (``License:`` fields, or keywords guessed in a
            free-form file); ``("unknown",)`` when the file is missing.
        summary: the first non-empty lines of the file, for people to read.
        machine_readable: whether the file follows the DEP-5 format.
        stanzas: DEP-5 ``(patterns, licence)`` pairs in file order.
    """

    licences: tuple[str, ...]
    summary: str
    machine_readable: bool
    stanzas: tuple[tuple[tuple[str, ...], str], ...] = ()



_LICENCE_KEYWORDS = (
    ("CC0", r"\bCC0\b|creative commons zero"),
    ("CC-BY-SA", r"CC[- ]BY[- ]SA|attribution[- ]share ?alike"),
    ("CC-BY", r"CC[- ]BY(?![- ]SA)|creative commons attribution(?![- ]share)"),
    ("GPL", r"\bGPL\b|GNU General Public License"),
    ("LGPL", r"\bLGPL\b|GNU Lesser General Public License"),
    ("BSD", r"\bBSD\b"),
    ("MIT", r"\bMIT\b|\bExpat\b"),
    ("public-domain", r"public[- ]domain"),
)


def parse_copyright(text: str) -> CopyrightInfo:
    """Parse a Debian copyright file (DEP-5 when it says so, free-form otherwise)."""
    lines = text.splitlines()
    summary = "\n".join([ln.rstrip() for ln in lines if ln.strip()][:8])
    machine_readable = bool(re.match(r"^Format:\s*\S+", text.lstrip()))
    stanzas: list[tuple[tuple[str, ...], str]] = []
    licences: set[str] = set()
    if machine_readable:
        for para in re.split(r"\n\s*\n", text):
            fields = _dep5_fields(para)
            lic_text = fields.get("license", "")
            lic = lic_text.split("\n", 1)[0].strip()
            if "files" in fields and "license" in fields and not lic:
                # Licence given only as text: name it by keywords found in the text.
                lic = " / ".join(_guess_licences(lic_text)) or "see-copyright-text"
            if "files" in fields and lic:
                patterns = tuple(fields["files"].split())
                stanzas.append((patterns, lic))
                licences.add(lic)
    else:
        licences.update(_guess_licences(text))
    return CopyrightInfo(
        licences=tuple(sorted(licences)) or ("unknown",),
        summary=summary,
        machine_readable=machine_readable,
        stanzas=tuple(stanzas),
    )


def _guess_licences(text: str) -> list[str]:
    return [name for name, pattern in _LICENCE_KEYWORDS if re.search(pattern, text, re.IGNORECASE)]


def _dep5_fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def read_copyright(root: Path, package: str) -> CopyrightInfo:
    """Licence facts from ``root/usr/share/doc/PACKAGE/copyright`` (``unknown`` if absent)."""
    path = root / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        logger.warning("%s ships no copyright file at %s; licence recorded as unknown", package, path)
        return CopyrightInfo(("unknown",), "", False)
    return parse_copyright(text)


def match_licence(info: CopyrightInfo, installed_path: str) -> tuple[str, str]:
    """Licence of one installed file and how it was found.

    DEP-5 ``Files:`` patterns are relative to the *source* tree, while we see *installed* paths
    (and sometimes converted files: GCompris ships ``x.jpg`` from its sources as ``x.webp``). A
    stanza therefore matches at one of these levels, best first:

    - ``"exact"``: the pattern matches a trailing part of the installed path;
    - ``"converted"``: it does once the pattern's file extension is replaced by the file's;
    - ``"basename"``: the pattern's last component is a plain file name (no wildcard) equal to
      the file's name, up to the extension (packaging moved the file to another folder).

    A file unpacked from an archive (``base/0textures.pk3.d/textures/x.png``) is matched both
    at its unpacked path and with the ``<archive>.d`` folder left out (``base/textures/x.png``),
    since the source tree held the files, not the archive.

    The best level wins; within a level, the last stanza wins, as in DEP-5. Otherwise the
    catch-all ``Files: *`` stanza applies (``"catch-all"``), else every licence of the package
    (``"package"``).

    Returns:
        ``(licence, basis)``.
    """
    parts = installed_path.strip("/").split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    # A member of an unpacked archive is also matched as if the archive were a plain folder:
    # ufoai's copyright names base/textures/x.png for what ships in base/0textures.pk3.
    flat = [p for p in parts if not _UNPACKED_ARCHIVE.fullmatch(p)]
    if len(flat) < len(parts):
        suffixes += ["/".join(flat[i:]) for i in range(len(flat))]
    name = parts[-1]
    ext = os.path.splitext(name)[1]
    best: tuple[int, str] | None = None
    for patterns, lic in info.stanzas:
        for pattern in patterns:
            if pattern == "*":
                continue
            stem, pext = os.path.splitext(pattern)
            level = 0
            if any(fnmatch.fnmatchcase(sfx, pattern) for sfx in suffixes):
                level = 3
            elif pext and ext and any(fnmatch.fnmatchcase(sfx, stem + ext) for sfx in suffixes):
                level = 2
            else:
                base = pattern.rsplit("/", 1)[-1]
                if "/" in pattern and not any(ch in base for ch in "*?[") and (
                    fnmatch.fnmatchcase(name, base)
                    or (pext and ext and fnmatch.fnmatchcase(name, os.path.splitext(base)[0] + ext))
                ):
                    level = 1
            if level and (best is None or level >= best[0]):
                best = (level, lic)
    if best is not None:
        return best[1], {3: "exact", 2: "converted", 1: "basename"}[best[0]]
    catch_all = [lic for patterns, lic in info.stanzas if "*" in patterns]
    if catch_all:
        return catch_all[-1], "catch-all"
    return " / ".join(info.licences), "package"


_UNPACKED_ARCHIVE = re.compile(r".+\.(?:rcc|pk3)\.d")


def licence_for_path(info: CopyrightInfo, installed_path: str) -> str:
    """Licence of one installed file (see ``match_licence``)."""
    return match_licence(info, installed_path)[0]
