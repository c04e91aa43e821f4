"""Download official checkpoints: progress bar, resume of partial files, md5 check, atomic move."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DownloadError
from .catalog import OFFICIAL_BASE_URL, get_official

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    md5_prefix: str | None = None,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` into ``dest``. A ``dest.partial`` from an earlier try is resumed with an
    HTTP Range request; the file only appears at ``dest`` after its md5 matched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            response = None
        else:
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if have and not resumed:
                have = 0  # server ignored Range: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            mode = "ab" if resumed else "wb"
            with open(partial, mode) as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress,
            ) as bar:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
                except OSError as exc:
                    raise DownloadError(
                        f"download of {url} was interrupted ({exc}); run the same command again "
                        "to resume"
                    ) from None
                out.flush()
                os.fsync(out.fileno())
            if total is not None and partial.stat().st_size != total:
                raise DownloadError(
                    f"download of {url} stopped at {partial.stat().st_size} of {total} bytes; "
                    "run the same command again to resume"
                )
    if md5_prefix:
        digest = md5_of(partial)
        if not digest.startswith(md5_prefix):
            partial.unlink()
            raise DownloadError(
                f"{dest.name}: md5 {digest[:12]}... does not start with the published {md5_prefix}; "
                "the partial file was deleted, run the command again"
            )
    os.replace(partial, dest)
    return dest


def pull_official(
    name: str, folder: Path, base_url: str | None = None, *, progress: bool = True
) -> Path:
    """Download the official checkpoint ``name`` into ``folder`` (skips a verified file)."""
    entry = get_official(name)
    base = base_url or os.environ.get("MAE_CHECKPOINT_BASE_URL") or OFFICIAL_BASE_URL
    dest = Path(folder) / entry.filename
    if dest.exists() and (entry.md5_prefix is None or md5_of(dest).startswith(entry.md5_prefix)):
        log.info("%s is already present and verified", dest)
        return dest
    log.info("downloading %s from %s", name, entry.url(base))
    return download(entry.url(base), dest, entry.md5_prefix, progress=progress)
