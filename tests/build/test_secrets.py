"""No secret leaves its node: what every address may fetch (shared/) holds no secret
path and no secret value, however alike the secret is on every node."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import libarchive
import pytest

from tests.support.project import make_project, run_doit

PASSWORD = "bmc-pw-7f3a9c"                   # the same on every node: a profile's value
MUNGE = b"munge-key-b1e2d3c4-same-everywhere\n"
PRIVATE = "private-0600-9d8e7f"
# Output paths that must only be in a node's own part, by the reason they are secret.
SECRET_PATHS = {"etc/munge/munge.key",       # a static file marked secret: true
                "etc/bmc.list",              # a template reading only `nodes`, but their passwords
                "etc/private.conf"}          # a file the manifest makes unreadable to others


def contents(archive: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with libarchive.file_reader(str(archive)) as arch:
        for e in arch:
            out[e.pathname] = b"".join(e.get_blocks())
    return out


def add_overlays(project: Path) -> None:
    munge = project / "overlays/munge"
    (munge / "rootfs/etc/munge").mkdir(parents=True)
    (munge / "rootfs/etc/munge/munge.key").write_bytes(MUNGE)
    (munge / "rootfs/etc/private.conf").write_text(PRIVATE + "\n")
    (munge / "rootfs/etc/motd.munge").write_text("not a secret\n")
    (munge / "manifest.yaml").write_text('etc/munge/munge.key: {secret: true}\n'
                                         'etc/private.conf: {mode: "0640"}\n')
    leaky = project / "overlays/leaky/rootfs/etc"
    leaky.mkdir(parents=True)
    (leaky / "bmc.list.j2").write_text("{% for n in nodes %}{{ n.name }} {{ n.ipmi.password }}\n"
                                       "{% endfor %}")


def edit(data: dict[str, Any]) -> None:
    profile = data["profiles"]["default"]
    profile["ipmi"] = {"user": "admin", "password": PASSWORD}
    profile["system_overlays"] += ["munge"]
    profile["runtime_overlays"] += ["leaky"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("secrets") / "site", edit)
    add_overlays(project)
    result = run_doit(project)
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_no_secret_in_any_shared_blob(built: Path) -> None:
    http = built / "output/http"
    shared = sorted((http / "shared").glob("*.img.gz"))
    assert shared, "the build made no shared part"
    values = [MUNGE.strip(), PASSWORD.encode(), PRIVATE.encode()]
    seen: set[str] = set()
    for blob in shared:
        files = contents(blob)
        seen |= set(files)
        assert not SECRET_PATHS & set(files), (blob.name, sorted(SECRET_PATHS & set(files)))
        for path, data in files.items():
            assert not any(v in data for v in values), (blob.name, path)
    assert "etc/motd.munge" in seen   # the munge overlay's plain file is still shared


def test_each_node_carries_its_own_copy(built: Path) -> None:
    for node in ("n01", "n04"):
        own: dict[str, bytes] = {}
        for blob in (built / "output/http/nodes" / node).glob("*.img.gz"):
            own |= contents(blob)
        assert set(own) >= SECRET_PATHS, sorted(own)
        assert own["etc/munge/munge.key"] == MUNGE
        assert PASSWORD.encode() in own["etc/bmc.list"]


def served(project: Path) -> dict[str, str]:
    http = project / "output/http"
    return {str(p.relative_to(http)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(http.rglob("*")) if p.is_file()}


def test_a_manifest_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", edit)
    add_overlays(project)
    assert run_doit(project).returncode == 0
    before = served(project)
    manifest = project / "overlays/munge/manifest.yaml"
    manifest.write_text(manifest.read_text() + "etc/munge/munge.kee: {secret: true}\n")
    result = run_doit(project)
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert f"{manifest}:3:1" in text, text
    assert "`etc/munge/munge.kee` matches no file" in text and "etc/munge/munge.key" in text, text
    assert "Traceback" not in text, text
    assert served(project) == before
