"""Resumable HTTP(S) downloads into the asset cache, verified before anything is extracted.

Archives go to `<root>/.downloads/<id>-<hash of url>.zip`; the hash keeps a new upstream version
from reusing an old file. Bytes arrive in a `.part` file first, so a killed download leaves
nothing that looks finished, and the next run resumes it with an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from refinevla_bench import __version__
from refinevla_bench.harness.assets.catalog import AssetSource
from refinevla_bench.harness.errors import HarnessError

DOWNLOADS_DIR = ".downloads"
MIRROR_ENV_VAR = "REFINEVLA_ASSET_MIRROR"
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
USER_AGENT = f"refinevla-bench/{__version__}"

_NETWORK_FIX = (
    f"check the network connection, set {MIRROR_ENV_VAR} to a mirror, or install from a local "
    "copy with `refinevla-bench assets fetch --from DIR`"
)
_RESUME_FIX = "run the same `refinevla-bench assets fetch` command again: it resumes the download"


def resolve_url(url: str) -> str:
    """`url`, with scheme and host replaced by $REFINEVLA_ASSET_MIRROR when that is set.

    The mirror keeps upstream paths: with REFINEVLA_ASSET_MIRROR=http://mirror:8000/assets,
    https://github.com/haosulab/X/archive/v1.zip is fetched from
    http://mirror:8000/assets/haosulab/X/archive/v1.zip.
    """
    mirror = os.environ.get(MIRROR_ENV_VAR, "").strip()
    if not mirror:
        return url
    parts = urlsplit(url)
    return mirror.rstrip("/") + urlunsplit(("", "", parts.path, parts.query, ""))


def cached_archive(root: Path, source: AssetSource) -> Path:
    """Where the verified archive for `source` is kept between fetches."""
    url_hash = hashlib.sha256(source.url.encode()).hexdigest()[:12]
    return root / DOWNLOADS_DIR / f"{source.id}-{url_hash}.zip"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_archive(
    root: Path, source: AssetSource, *, console: Console | None = None
) -> tuple[Path, str]:
    """The cached archive for `source` and its sha256, downloading only what is missing."""
    final = cached_archive(root, source)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_file():
        digest = sha256_file(final)
        if source.sha256 in (None, digest):
            return final, digest
        final.unlink()
    part = final.with_name(final.name + ".part")
    meta = final.with_name(final.name + ".part.json")
    url = resolve_url(source.url)
    _stream(url, part, meta, source.id, console)
    digest = sha256_file(part)
    if source.sha256 is not None and digest != source.sha256:
        _discard(part, meta)
        raise HarnessError(
            f"sha256 of the {source.id} download from {url} is {digest[:12]}..., "
            f"expected {source.sha256[:12]}... (file deleted)",
            "run the same command again; if it repeats, the upstream file changed: install a "
            "verified copy with `refinevla-bench assets fetch --from DIR`",
        )
    part.replace(final)
    meta.unlink(missing_ok=True)
    return final, digest


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _stream(url: str, part: Path, meta: Path, label: str, console: Console | None) -> None:
    """Append the rest of `url` to `part`; raise HarnessError if the body ends short."""
    offset, validator = _resume_point(part, meta, url)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:  # the server sends the whole file instead if it changed since
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE and offset:
            _discard(part, meta)
            _stream(url, part, meta, label, console)
            return
        raise HarnessError(
            f"download of {label} failed: HTTP {exc.code} from {url}", _NETWORK_FIX
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        problem = f"cannot download {label} from {url}: {_reason(exc)}"
        raise HarnessError(problem, _NETWORK_FIX) from exc
    with response:
        if response.status != HTTPStatus.PARTIAL_CONTENT:
            offset = 0
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            _discard(part, meta)
            raise HarnessError(f"{url} answered with an unexpected byte range", _RESUME_FIX)
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else None
        _write_validator(meta, url, response.headers)
        done = _copy_body(response, part, offset, total, label, console)
    if total is not None and done < total:
        raise HarnessError(f"download of {label} stopped at {done} of {total} bytes", _RESUME_FIX)


def _resume_point(part: Path, meta: Path, url: str) -> tuple[int, str | None]:
    """Bytes already fetched from `url` and the validator they were fetched under."""
    try:
        saved = json.loads(meta.read_text(encoding="utf-8"))
        if part.is_file() and isinstance(saved, dict) and saved.get("url") == url:
            validator = saved.get("validator")
            return part.stat().st_size, validator if isinstance(validator, str) else None
    except (OSError, ValueError):
        pass
    _discard(part, meta)
    return 0, None


def _write_validator(meta: Path, url: str, headers: Mapping[str, str]) -> None:
    etag = headers.get("ETag")
    strong_etag = etag if etag and not etag.startswith("W/") else None
    validator = strong_etag or headers.get("Last-Modified")
    meta.write_text(json.dumps({"url": url, "validator": validator}), encoding="utf-8")


def _copy_body(
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    label: str,
    console: Console | None,
) -> int:
    done = offset
    with part.open("ab" if offset else "wb") as out, _progress(console, label, total, done) as tick:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise HarnessError(
                    f"download of {label} broke off after {done} bytes: {_reason(exc)}",
                    _RESUME_FIX,
                ) from exc
            if not chunk:
                return done
            out.write(chunk)
            done += len(chunk)
            tick(len(chunk))


@contextmanager
def _progress(
    console: Console | None, label: str, total: int | None, done: int
) -> Iterator[Callable[[int], None]]:
    if console is None:
        yield lambda _bytes: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, completed=done)
        yield lambda count: progress.advance(task, count)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__
