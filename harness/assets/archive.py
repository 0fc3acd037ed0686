"""Zip extraction that refuses members which could write outside the staging folder."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath


class ArchiveError(Exception):
    """The archive is unreadable or unsafe; the caller knows which fix applies."""


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in parts:
        return "a '..' path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symlink"
    return None


def _single_top_folder(infos: list[zipfile.ZipInfo]) -> str:
    tops = {PurePosixPath(info.filename).parts[0] for info in infos}
    nested = all(len(PurePosixPath(info.filename).parts) > 1 or info.is_dir() for info in infos)
    if len(tops) != 1 or not nested:
        raise ArchiveError(f"expected one top-level folder, found {sorted(tops)[:5]}")
    return tops.pop()


def extract_archive(archive: Path, dest: Path) -> Path:
    """Check every member, extract into `dest`, and return the archive's top-level folder.

    Upstream archives (GitHub, Hugging Face) hold one folder named after the release, so the
    content is whatever sits inside it.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            if not infos:
                raise ArchiveError("it is empty")
            for info in infos:
                problem = _member_problem(info)
                if problem is not None:
                    raise ArchiveError(f"member {info.filename!r} is {problem}")
            top = _single_top_folder(infos)
            zipped.extractall(dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ArchiveError(f"it is not a readable zip ({exc})") from exc
    return dest / top
