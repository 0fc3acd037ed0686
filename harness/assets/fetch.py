"""Install assets into an asset root so that a target folder which exists is always complete.

Content is prepared in `<root>/.staging/<id>-<random>/`, checked, stamped with the marker, then
renamed onto the target in one step. A folder that was already there moves to `<root>/.trash`:
it may hold a user's files, so it is never deleted.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from refinevla_bench.harness.assets.archive import ArchiveError, extract_archive
from refinevla_bench.harness.assets.box_standins import add_box_standins
from refinevla_bench.harness.assets.catalog import AssetSource, sources_for_suite
from refinevla_bench.harness.assets.download import (
    download_archive,
    resolve_url,
    sha256_file,
)
from refinevla_bench.harness.assets.store import AssetStatus, asset_status, write_marker
from refinevla_bench.harness.errors import HarnessError

STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
LOCK_NAME = ".fetch.lock"


def fetch_assets(
    root: Path,
    suite: str,
    *,
    from_dir: Path | None = None,
    force: bool = False,
    console: Console | None = None,
) -> list[AssetStatus]:
    """Install every asset `suite` needs under `root`; safe to repeat, installed ones are kept.

    Downloads unless `from_dir` is given. Leftover staging folders of killed runs are removed
    first; partial downloads are kept and resumed.
    """
    sources = sources_for_suite(suite)
    source_dir = _checked_from_dir(root, from_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _fetch_lock(root):
            shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
            _check_replaceable(root, sources, force=force)
            for source in sources:
                if source_dir is None:
                    install_download(root, source, force=force, console=console)
                else:
                    install_from_dir(root, source, source_dir, force=force, console=console)
            shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot install assets into {root}: {exc}",
            f"free disk space or fix permissions on {root}, or choose another folder with --dir D",
        ) from exc
    return [asset_status(root, source) for source in sources]


def install_download(
    root: Path, source: AssetSource, *, force: bool = False, console: Console | None = None
) -> AssetStatus:
    """Install `source` from its URL (or the verified archive cached by an earlier fetch)."""
    if not _needs_install(root, source, force=force, console=console):
        return asset_status(root, source)
    archive, digest = download_archive(root, source, console=console)
    url = resolve_url(source.url)
    try:
        return _install_archive(root, source, archive, digest, url, console)
    except ArchiveError as exc:
        archive.unlink(missing_ok=True)
        raise HarnessError(
            f"the {source.id} archive from {url} is unusable: {exc} (cached file deleted)",
            "run the same command again; if it repeats, install a laid-out copy with "
            "`refinevla-bench assets fetch --from DIR`",
        ) from exc


def install_from_dir(
    root: Path,
    source: AssetSource,
    src_dir: Path,
    *,
    force: bool = False,
    console: Console | None = None,
) -> AssetStatus:
    """Install `source` from a laid-out asset tree or from a folder of upstream archives.

    A tree (like ../shared/assets) must hold `src_dir/<target>`; its stand-ins come from its
    SUBSTITUTES.json or marker. Archives are looked up as `<id>.zip`, then by the URL's file
    name (`v0.2.0.zip` names two upstream releases, hence the id form).
    """
    tree = src_dir / source.target
    archive = None if tree.is_dir() else _archive_in(src_dir, source)
    if not tree.is_dir() and archive is None:
        raise HarnessError(
            f"{src_dir} has neither {source.target}/ nor {source.id}.zip or "
            f"{source.url_file_name} for asset {source.id}",
            "point --from at a copy of the asset tree (like ../shared/assets) or at a folder of "
            "the upstream archives, or drop --from to download",
        )
    if not _needs_install(root, source, force=force, console=console):
        return asset_status(root, source)
    if archive is None:
        return _install_tree(root, source, src_dir, console)
    return _install_local_archive(root, source, archive, console)


def _install_tree(
    root: Path, source: AssetSource, src_dir: Path, console: Console | None
) -> AssetStatus:
    available = asset_status(src_dir, source)
    if not available.ready:
        raise HarnessError(
            f"{available.target} lacks {', '.join(available.missing_files)}",
            "point --from at a complete copy of the asset tree",
        )
    with _staging(root, source) as staging:
        content = staging / "copy"
        _copy_tree(available.target, content)
        standins = [*available.standins, *add_box_standins(content, source)]
        write_marker(content, source, f"local:{src_dir}", None, standins)
        _put_in_place(root, source, content, console)
    return asset_status(root, source)


def _install_local_archive(
    root: Path, source: AssetSource, archive: Path, console: Console | None
) -> AssetStatus:
    fix = f"replace {archive} with the file from {source.url}"
    digest = sha256_file(archive)
    if source.sha256 is not None and digest != source.sha256:
        raise HarnessError(
            f"sha256 of {archive} is {digest[:12]}..., expected {source.sha256[:12]}...", fix
        )
    try:
        return _install_archive(root, source, archive, digest, f"archive:{archive}", console)
    except ArchiveError as exc:
        raise HarnessError(f"{archive} is unusable for {source.id}: {exc}", fix) from exc


def _install_archive(
    root: Path,
    source: AssetSource,
    archive: Path,
    digest: str,
    origin: str,
    console: Console | None,
) -> AssetStatus:
    """Extract, check the layout, stamp and rename; ArchiveError if the archive does not fit."""
    with _staging(root, source) as staging:
        content = extract_archive(archive, staging / "unpacked") / source.inner_path
        missing = [rel for rel in source.required if not (content / rel).exists()]
        if missing:
            inner = f"{source.inner_path}/" if source.inner_path else "its top folder"
            raise ArchiveError(f"archive layout unexpected: {inner} lacks {', '.join(missing)}")
        write_marker(content, source, origin, digest, ())
        _put_in_place(root, source, content, console)
    return asset_status(root, source)


def _check_replaceable(root: Path, sources: Sequence[AssetSource], *, force: bool) -> None:
    """Refuse, before any work, to replace folders this tool did not finish installing."""
    if force:
        return
    states = (asset_status(root, source) for source in sources)
    blocked = [
        status
        for status in states
        if status.state in ("unmanaged", "incomplete") and not _is_empty_dir(status.target)
    ]
    if blocked:
        names = ", ".join(f"{status.id} ({status.state})" for status in blocked)
        raise HarnessError(
            f"{root} already holds {names}, not installed by `assets fetch`",
            "run the same `refinevla-bench assets fetch` command with --force: it moves them "
            f"to {root / TRASH_DIR} and installs fresh",
        )


def _needs_install(
    root: Path, source: AssetSource, *, force: bool, console: Console | None
) -> bool:
    _check_replaceable(root, [source], force=force)
    if force or asset_status(root, source).state != "installed":
        return True
    _say(console, f"{source.id}: already installed in {root / source.target}")
    return False


def _put_in_place(root: Path, source: AssetSource, content: Path, console: Console | None) -> None:
    target = root / source.target
    if _is_empty_dir(target):
        target.rmdir()
    elif target.exists() or target.is_symlink():
        moved = _move_to_trash(root, source, target)
        _say(console, f"{source.id}: moved the old {target} to {moved}")
    target.parent.mkdir(parents=True, exist_ok=True)
    content.replace(target)
    _say(console, f"{source.id}: installed in {target}")


def _move_to_trash(root: Path, source: AssetSource, target: Path) -> Path:
    trash = root / TRASH_DIR
    trash.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = trash / f"{source.id}-{stamp}"
    count = 1
    while dest.exists():
        dest = trash / f"{source.id}-{stamp}-{count}"
        count += 1
    target.replace(dest)
    return dest


def _is_empty_dir(path: Path) -> bool:
    """ManiSkill's own downloader leaves one behind when it fails: nothing to keep there."""
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _archive_in(src_dir: Path, source: AssetSource) -> Path | None:
    for name in (f"{source.id}.zip", source.url_file_name):
        if (src_dir / name).is_file():
            return src_dir / name
    return None


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy contents, not modes: a read-only source (CI's shared copy) must install writable."""
    for folder, _dirs, files in os.walk(src, followlinks=True):
        out = dst / Path(folder).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(Path(folder, name), out / name)


@contextmanager
def _staging(root: Path, source: AssetSource) -> Iterator[Path]:
    base = root / STAGING_DIR
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{source.id}-", dir=base))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _fetch_lock(root: Path) -> Iterator[None]:
    """One fetch per root: a second one would delete the first one's staging folder."""
    with (root / LOCK_NAME).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise HarnessError(
                f"another `refinevla-bench assets fetch` is filling {root}",
                "wait for it to finish, then run the command again",
            ) from exc
        yield


def _checked_from_dir(root: Path, from_dir: Path | None) -> Path | None:
    if from_dir is None:
        return None
    src = from_dir.expanduser().resolve()
    if not src.is_dir():
        raise HarnessError(
            f"--from folder {src} does not exist",
            "pass a folder holding the asset tree or the upstream archives, "
            "e.g. `--from ../shared/assets`",
        )
    if src == root.expanduser().resolve():
        raise HarnessError(
            f"--from {src} is the asset root being filled",
            "pass the folder that holds the copy, or drop --from to download",
        )
    return src


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(escape(message), highlight=False, soft_wrap=True)
