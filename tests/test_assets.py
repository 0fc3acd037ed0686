"""Asset fetch and status against a real loopback HTTP server, real zips and the reference copy."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import random
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from refinevla_bench.harness.assets import fetch as fetch_module
from refinevla_bench.harness.assets.catalog import (
    ASSET_SOURCES,
    SUITE_NAMES,
    AssetSource,
    sources_for_suite,
)
from refinevla_bench.harness.assets.commands import assets_app
from refinevla_bench.harness.assets.download import DOWNLOADS_DIR, MIRROR_ENV_VAR
from refinevla_bench.harness.assets.fetch import (
    LOCK_NAME,
    STAGING_DIR,
    TRASH_DIR,
    fetch_assets,
    install_download,
    install_from_dir,
)
from refinevla_bench.harness.assets.store import (
    MARKER_NAME,
    asset_status,
    require_suite_assets,
    suite_asset_status,
)
from refinevla_bench.harness.errors import HarnessError


def shared_assets() -> Path:
    """The read-only reference copy beside the checkout; a missing copy fails the tests."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
    if not path.is_dir():
        path = Path(os.environ.get("REFINEVLA_SHARED_ASSETS", str(path)))
    assert (path / "maniskill").is_dir(), f"no asset copy at {path}: set REFINEVLA_SHARED_ASSETS"
    return path


SHARED = shared_assets()
SOURCES = {source.id: source for source in ASSET_SOURCES}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read or fill the user's real cache, or follow a mirror set outside."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("REFINEVLA_ASSETS", raising=False)
    monkeypatch.delenv(MIRROR_ENV_VAR, raising=False)


# --- a real HTTP server serving in-memory archives ------------------------------------------------


@dataclass
class Upstream:
    """What the loopback server serves, the faults it injects, and the requests it saw."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "ok"  # "ok", "drop" (close midway), "wrong" (other bytes)
    ranges: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base_url + path


class _Server(ThreadingHTTPServer):
    upstream: Upstream


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        upstream = self.server.upstream
        upstream.requests.append((self.path, self.headers.get("Range")))
        body = upstream.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if upstream.mode == "wrong":
            body = bytes(byte ^ 0xFF for byte in body)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start = 0
        wanted = self.headers.get("Range")
        if wanted and upstream.ranges and self.headers.get("If-Range", etag) == etag:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.end_headers()
        if upstream.mode == "drop":
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.upstream = Upstream(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.upstream
    server.shutdown()
    server.server_close()


# --- archives -------------------------------------------------------------------------------------


def make_zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
        for name, link_target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, link_target)
    return buffer.getvalue()


def mesh_bytes(seed: int) -> bytes:
    return random.Random(seed).randbytes(300_000)  # incompressible, so a cut lands midway


def sample_zip(seed: int = 1) -> bytes:
    return make_zip(
        {"Sample-1.0/robot.urdf": b"<robot/>", "Sample-1.0/meshes/link.stl": mesh_bytes(seed)}
    )


def sample_source(url: str, sha256: str | None = None) -> AssetSource:
    return AssetSource(
        id="sample",
        url=url,
        sha256=sha256,
        pin="test",
        inner_path="",
        target="maniskill/data/robots/sample",
        required=("robot.urdf", "meshes"),
        suites=("widowx",),
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def google_robot_zips() -> dict[str, bytes]:
    """Archives shaped like the upstream GitHub ones (one top folder; real2sim's data/ inside)."""
    robot_top = "ManiSkill-GoogleRobot-0.1.0"
    robot = make_zip(
        {
            f"{robot_top}/google_robot_meta_sim_fix_wheel_fix_fingertip.urdf": b"<r/>",
            f"{robot_top}/meshes/base.stl": b"solid",
        }
    )
    top = "ManiSkill2_real2sim-ef7a4d4fdf4b69f2c2154db5b15b9ac8dfe10682"
    data = make_zip(
        {
            f"{top}/README.md": b"not asset data",
            f"{top}/mani_skill2_real2sim/__init__.py": b"",
            f"{top}/data/custom/info_pick_custom_v0.json": b"{}",
            f"{top}/data/custom/mk_station_recolor.urdf": b"<r/>",
            f"{top}/data/real_inpainting/google_coke_can_real_eval_1.png": b"png",
        }
    )
    return {"googlerobot": robot, "real2sim_data": data}


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# --- catalog --------------------------------------------------------------------------------------


def test_catalog_matches_the_reference_layout() -> None:
    for source in ASSET_SOURCES:
        for rel in source.required:
            assert (SHARED / source.target / rel).exists(), f"{source.id}: {rel}"
    assert {s.id for s in sources_for_suite("widowx")} == {"widowx250s", "bridge_v2_real2sim"}
    assert {s.id for s in sources_for_suite("google_robot")} == {"googlerobot", "real2sim_data"}
    assert sources_for_suite("all") == list(ASSET_SOURCES)
    assert SOURCES["widowx250s"].url_file_name == "v0.2.0.zip"


def test_unknown_suite_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        sources_for_suite("franka")
    assert "franka" in caught.value.problem
    assert all(name in caught.value.fix for name in (*SUITE_NAMES, "all"))
    with pytest.raises(HarnessError):
        fetch_assets(tmp_path / "root", "franka", from_dir=SHARED)
    assert not (tmp_path / "root").exists()


# --- downloads ------------------------------------------------------------------------------------


def test_download_verifies_sha_lays_out_and_caches(upstream: Upstream, tmp_path: Path) -> None:
    body = sample_zip()
    source = sample_source(upstream.serve("/sample.zip", body), sha256_of(body))
    root = tmp_path / "root"

    status = install_download(root, source)

    target = root / source.target
    assert status.state == "installed" and status.ready
    assert (target / "meshes" / "link.stl").read_bytes() == mesh_bytes(1)
    marker = json.loads((target / MARKER_NAME).read_text())
    assert marker["source"] == source.url and marker["sha256"] == sha256_of(body)
    assert marker["id"] == "sample" and marker["pin"] == "test" and marker["standins"] == []
    assert marker["installed_at"].endswith("+00:00")
    assert not list((root / STAGING_DIR).iterdir())

    install_download(root, source)  # installed: nothing to do
    install_download(root, source, force=True)  # reinstall from the cached archive
    assert len(upstream.requests) == 1
    assert [p.name.startswith("sample-") for p in (root / TRASH_DIR).iterdir()] == [True]
    assert asset_status(root, source).state == "installed"

    (cached,) = (root / DOWNLOADS_DIR).iterdir()
    cached.write_bytes(b"damaged")
    assert install_download(root, source, force=True).state == "installed"
    assert len(upstream.requests) == 2  # a cached file that fails its sha256 is fetched again
    assert cached.read_bytes() == body


def test_sha_mismatch_deletes_the_download_and_installs_nothing(
    upstream: Upstream, tmp_path: Path
) -> None:
    body = sample_zip()
    source = sample_source(upstream.serve("/sample.zip", body), sha256_of(body))
    upstream.mode = "wrong"
    root = tmp_path / "root"

    with pytest.raises(HarnessError) as caught:
        install_download(root, source)

    assert "sha256" in caught.value.problem and "--from" in caught.value.fix
    assert not (root / source.target).exists()
    assert list((root / DOWNLOADS_DIR).iterdir()) == []


def test_dropped_connection_leaves_no_target_and_the_rerun_resumes(
    upstream: Upstream, tmp_path: Path
) -> None:
    body = sample_zip()
    source = sample_source(upstream.serve("/sample.zip", body), sha256_of(body))
    upstream.mode = "drop"
    root = tmp_path / "root"

    with pytest.raises(HarnessError) as caught:
        install_download(root, source)

    assert "again" in caught.value.fix
    assert not (root / source.target).exists()
    (part,) = (root / DOWNLOADS_DIR).glob("*.part")
    assert 0 < part.stat().st_size < len(body)

    upstream.mode = "ok"
    assert install_download(root, source).state == "installed"
    assert upstream.requests[-1] == ("/sample.zip", f"bytes={len(body) // 2}-")
    assert (root / source.target / "meshes" / "link.stl").read_bytes() == mesh_bytes(1)
    assert not list((root / DOWNLOADS_DIR).glob("*.part*"))


@pytest.mark.parametrize("change", ["file changed upstream", "server ignores Range"])
def test_rerun_restarts_when_a_resume_would_corrupt(
    upstream: Upstream, tmp_path: Path, change: str
) -> None:
    source = sample_source(upstream.serve("/sample.zip", sample_zip(seed=1)))  # no sha known
    upstream.mode = "drop"
    root = tmp_path / "root"
    with pytest.raises(HarnessError):
        install_download(root, source)

    upstream.mode = "ok"
    if change == "server ignores Range":
        upstream.ranges = False
        expected = mesh_bytes(1)
    else:  # the ETag changes, so If-Range makes the server send the whole new file
        upstream.serve("/sample.zip", sample_zip(seed=2))
        expected = mesh_bytes(2)

    status = install_download(root, source)

    assert status.state == "installed"
    assert (root / source.target / "meshes" / "link.stl").read_bytes() == expected


def test_http_error_names_the_status_and_the_alternatives(
    upstream: Upstream, tmp_path: Path
) -> None:
    source = sample_source(upstream.base_url + "/nowhere.zip")
    with pytest.raises(HarnessError) as caught:
        install_download(tmp_path / "root", source)
    assert "HTTP 404" in caught.value.problem
    assert "--from DIR" in caught.value.fix and MIRROR_ENV_VAR in caught.value.fix
    assert not (tmp_path / "root" / source.target).exists()


@pytest.mark.parametrize(
    ("members", "symlinks", "reason"),
    [
        ({"Sample-1.0/robot.urdf": b"", "Sample-1.0/../../evil.txt": b"x"}, None, "'..'"),
        ({"Sample-1.0/robot.urdf": b"", "/tmp/evil.txt": b"x"}, None, "absolute"),
        ({"Sample-1.0/robot.urdf": b""}, {"Sample-1.0/meshes": "/etc"}, "symlink"),
    ],
)
def test_unsafe_archive_members_are_refused(
    upstream: Upstream,
    tmp_path: Path,
    members: dict[str, bytes],
    symlinks: dict[str, str] | None,
    reason: str,
) -> None:
    source = sample_source(upstream.serve("/evil.zip", make_zip(members, symlinks)))
    root = tmp_path / "root"

    with pytest.raises(HarnessError) as caught:
        install_download(root, source)

    assert reason in caught.value.problem
    assert not (root / source.target).exists()
    assert not list(tmp_path.rglob("evil.txt"))
    assert list((root / DOWNLOADS_DIR).iterdir()) == []  # the bad archive is not kept


def test_archive_with_the_wrong_layout_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    body = make_zip({"Sample-1.0/robot.urdf": b"<robot/>"})  # no meshes/
    source = sample_source(upstream.serve("/sample.zip", body))
    with pytest.raises(HarnessError) as caught:
        install_download(tmp_path / "root", source)
    assert "layout unexpected" in caught.value.problem and "meshes" in caught.value.problem
    assert not (tmp_path / "root" / source.target).exists()


def test_mirror_serves_a_catalog_suite_and_a_rerun_is_a_no_op(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zips = google_robot_zips()
    upstream.serve(
        "/haosulab/ManiSkill-GoogleRobot/archive/refs/tags/v0.1.0.zip", zips["googlerobot"]
    )
    upstream.serve(
        "/simpler-env/ManiSkill2_real2sim/archive/ef7a4d4fdf4b69f2c2154db5b15b9ac8dfe10682.zip",
        zips["real2sim_data"],
    )
    monkeypatch.setenv(MIRROR_ENV_VAR, upstream.base_url + "/")
    root = tmp_path / "root"
    log = io.StringIO()

    statuses = fetch_assets(root, "google_robot", console=Console(file=log, width=200))

    assert [s.state for s in statuses] == ["installed", "installed"]
    assert files_under(root / "real2sim" / "data") == {
        MARKER_NAME,
        "custom/info_pick_custom_v0.json",
        "custom/mk_station_recolor.urdf",
        "real_inpainting/google_coke_can_real_eval_1.png",
    }
    assert "real2sim_data: installed in" in log.getvalue()
    assert len(upstream.requests) == 2
    fetch_assets(root, "google_robot")
    assert len(upstream.requests) == 2
    require_suite_assets(root, "google_robot")


# --- local installs -------------------------------------------------------------------------------


def test_install_from_the_reference_tree_records_its_stand_ins(tmp_path: Path) -> None:
    root = tmp_path / "root"

    statuses = fetch_assets(root, "widowx", from_dir=SHARED)

    assert [(s.id, s.state) for s in statuses] == [
        ("widowx250s", "installed"),
        ("bridge_v2_real2sim", "installed"),
    ]
    bridge = statuses[1]
    assert bridge.source == f"local:{SHARED.resolve()}"
    standin_paths = {standin.path for standin in bridge.standins}
    assert {
        "maniskill/data/tasks/bridge_v2_real2sim_dataset/stages/bridge_table_1_v1.glb",
        "maniskill/data/tasks/bridge_v2_real2sim_dataset/custom/models/eggplant/textured.obj",
    } <= standin_paths
    assert all((root / path).is_file() for path in standin_paths)
    urdf = root / "maniskill/data/robots/widowx/wx250s.urdf"
    assert urdf.read_bytes() == (SHARED / "maniskill/data/robots/widowx/wx250s.urdf").read_bytes()
    assert urdf.stat().st_mode & stat.S_IWUSR and urdf.parent.stat().st_mode & stat.S_IWUSR
    assert [s.state for s in suite_asset_status(root, "google_robot")] == ["missing", "missing"]
    require_suite_assets(root, "widowx")


def test_install_from_a_folder_of_archives(tmp_path: Path) -> None:
    zips = google_robot_zips()
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / "v0.1.0.zip").write_bytes(zips["googlerobot"])  # upstream file name
    (archives / "real2sim_data.zip").write_bytes(zips["real2sim_data"])  # asset id name
    root = tmp_path / "root"

    statuses = fetch_assets(root, "google_robot", from_dir=archives)

    assert [s.source for s in statuses] == [
        f"archive:{archives / 'v0.1.0.zip'}",
        f"archive:{archives / 'real2sim_data.zip'}",
    ]
    assert statuses[1].sha256 == sha256_of(zips["real2sim_data"])
    assert (root / "real2sim/data/custom/info_pick_custom_v0.json").is_file()
    assert not (root / "real2sim/data/README.md").exists()


def test_local_archive_with_a_wrong_sha_is_refused_and_kept(tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    fake = archives / "bridge_v2_real2sim_dataset.zip"
    fake.write_bytes(sample_zip())
    root = tmp_path / "root"

    with pytest.raises(HarnessError) as caught:
        install_from_dir(root, SOURCES["bridge_v2_real2sim"], archives)

    assert (
        "sha256" in caught.value.problem and SOURCES["bridge_v2_real2sim"].url in caught.value.fix
    )
    assert fake.is_file()  # the user's file is theirs: reported, never deleted
    assert not (root / SOURCES["bridge_v2_real2sim"].target).exists()


def test_from_dir_without_the_asset_names_what_was_looked_for(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError) as caught:
        fetch_assets(tmp_path / "root", "widowx", from_dir=empty)
    problem = caught.value.problem
    assert "maniskill/data/robots/widowx/" in problem
    assert "widowx250s.zip" in problem and "v0.2.0.zip" in problem
    with pytest.raises(HarnessError, match="does not exist"):
        fetch_assets(tmp_path / "root", "widowx", from_dir=tmp_path / "nope")
    with pytest.raises(HarnessError, match="being filled"):
        fetch_assets(empty, "widowx", from_dir=empty)


def test_unmanaged_folder_needs_force_and_is_moved_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    mine = root / SOURCES["bridge_v2_real2sim"].target / "my_notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes")
    assert asset_status(root, SOURCES["bridge_v2_real2sim"]).state == "incomplete"

    with pytest.raises(HarnessError) as caught:
        fetch_assets(root, "widowx", from_dir=SHARED)

    assert "bridge_v2_real2sim (incomplete)" in caught.value.problem
    assert "--force" in caught.value.fix
    assert mine.read_text() == "my notes"
    assert not (root / SOURCES["widowx250s"].target).exists()  # checked before any work

    statuses = fetch_assets(root, "widowx", from_dir=SHARED, force=True)

    assert [s.state for s in statuses] == ["installed", "installed"]
    (moved,) = (root / TRASH_DIR).iterdir()
    assert moved.name.startswith("bridge_v2_real2sim-")
    assert (moved / "my_notes.txt").read_text() == "my notes"


def test_hand_copied_complete_folder_is_unmanaged_but_ready(tmp_path: Path) -> None:
    root = tmp_path / "root"
    source = SOURCES["googlerobot"]
    target = root / source.target
    target.mkdir(parents=True)
    for rel in source.required:
        (target / rel).write_text("<robot/>")

    status = asset_status(root, source)

    assert status.state == "unmanaged" and status.ready and status.source is None
    with pytest.raises(HarnessError, match="unmanaged"):
        install_from_dir(root, source, SHARED)


def test_empty_target_folder_is_replaced_without_force(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / SOURCES["widowx250s"].target).mkdir(parents=True)  # as a failed ManiSkill download

    statuses = fetch_assets(root, "widowx", from_dir=SHARED)

    assert [s.state for s in statuses] == ["installed", "installed"]
    assert not (root / TRASH_DIR).exists()


def test_killed_install_leaves_no_target_and_the_next_fetch_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_module, "write_marker", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch_assets(root, "widowx", from_dir=SHARED)
    assert not (root / SOURCES["widowx250s"].target).exists()
    monkeypatch.undo()

    leftover = root / STAGING_DIR / "widowx250s-killed" / "copy" / "wx250s.urdf"  # from SIGKILL
    leftover.parent.mkdir(parents=True)
    leftover.write_text("half")
    assert [s.state for s in fetch_assets(root, "widowx", from_dir=SHARED)] == ["installed"] * 2
    assert not (root / STAGING_DIR).exists()


def test_a_second_concurrent_fetch_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with (root / LOCK_NAME).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(HarnessError, match="another"):
            fetch_assets(root, "widowx", from_dir=SHARED)
    assert not (root / "maniskill").exists()


# --- readiness ------------------------------------------------------------------------------------


def test_missing_assets_are_one_line_naming_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    monkeypatch.setenv("REFINEVLA_ASSETS", str(root))

    with pytest.raises(HarnessError) as caught:
        require_suite_assets(root, "widowx")

    line = caught.value.one_line()
    assert "\n" not in line and len(line) < 300
    assert "widowx250s missing" in line and "bridge_v2_real2sim missing" in line
    assert str(root) in line
    assert "`refinevla-bench assets fetch --suite widowx`" in line
    assert list(root.iterdir()) == []

    monkeypatch.delenv("REFINEVLA_ASSETS")  # a non-default root must be named in the command
    with pytest.raises(HarnessError) as caught:
        require_suite_assets(root, "google_robot")
    assert f"refinevla-bench assets fetch --suite google_robot --dir {root}" in caught.value.fix


def test_incomplete_assets_suggest_force(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fetch_assets(root, "widowx", from_dir=SHARED)
    (root / "maniskill/data/robots/widowx/wx250s.srdf").unlink()

    with pytest.raises(HarnessError) as caught:
        require_suite_assets(root, "widowx")

    assert "widowx250s incomplete" in caught.value.problem
    assert "--force" in caught.value.fix
    assert asset_status(root, SOURCES["widowx250s"]).missing_files == ("wx250s.srdf",)


# --- the Typer commands ---------------------------------------------------------------------------


def test_cli_status_json_on_an_empty_root(tmp_path: Path) -> None:
    result = CliRunner().invoke(assets_app, ["status", "--json", "--dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["root"] == str(tmp_path.resolve())
    assert report["maniskill_asset_dir"] == str(tmp_path.resolve() / "maniskill")
    assert [a["state"] for a in report["assets"]] == ["missing"] * len(ASSET_SOURCES)
    assert report["suites"]["widowx"] == {
        "ready": False,
        "fetch_command": f"refinevla-bench assets fetch --suite widowx --dir {tmp_path.resolve()}",
    }


def test_cli_fetch_then_status_show_installed_assets_and_stand_ins(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "root"

    fetched = runner.invoke(
        assets_app, ["fetch", "--suite", "all", "--from", str(SHARED), "--dir", str(root)]
    )

    assert fetched.exit_code == 0, fetched.output
    assert f"export REFINEVLA_ASSETS={root}" in fetched.stdout
    report = json.loads(runner.invoke(assets_app, ["status", "--json", "--dir", str(root)]).stdout)
    assert all(asset["state"] == "installed" for asset in report["assets"])
    assert report["suites"]["google_robot"]["ready"] is True
    substitutes = json.loads((SHARED / "SUBSTITUTES.json").read_text())
    listed = [s["path"] for asset in report["assets"] for s in asset["standins"]]
    boxes = [  # upstream meshes the copy lacks, installed as flagged boxes
        "real2sim/data/custom/models/bridge_spoon_generated_modified/collision.obj",
        "real2sim/data/custom/models/bridge_spoon_generated_modified/textured.obj",
        "real2sim/data/custom/models/stone_tabletop.glb",
    ]
    assert sorted(listed) == sorted([*(entry["path"] for entry in substitutes), *boxes])

    shown = runner.invoke(assets_app, ["status", "--dir", str(root)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "installed" in shown.stdout and "suite widowx: ready" in shown.stdout
    assert "stages/bridge_table_1_v1.glb" in shown.stdout
    assert "models/eggplant/textured.obj" in shown.stdout


def test_cli_lets_harness_errors_reach_the_main_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(assets_app, ["fetch", "--suite", "franka", "--dir", str(tmp_path)])
    assert isinstance(result.exception, HarnessError)
    assert "franka" in result.exception.problem
