"""The inspection commands and the shipped JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from tests.support.project import REPO
from toolchain.model import spec


def wwstatic(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "toolchain.cli", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_shipped_schema_is_current() -> None:
    shipped = json.loads((REPO / "toolchain/cluster.schema.json").read_text())
    assert shipped == spec.json_schema(), "run `wwstatic schema > toolchain/cluster.schema.json`"


def test_reference_docs_are_current() -> None:
    shipped = (REPO / "docs/cluster-yaml.md").read_text()
    assert shipped == spec.markdown(), "run `wwstatic schema --markdown > docs/cluster-yaml.md`"


def test_schema_accepts_demo_and_rejects_unknown_keys() -> None:
    schema = spec.json_schema()
    data = yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(data, schema)
    data["profiles"]["default"]["imgae"] = "demo"
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as err:
        assert "imgae" in err.message
    else:
        raise AssertionError("schema accepted an unknown key")


def test_nodes_table_and_hostlist() -> None:
    done = wwstatic("nodes", "n[02-03]")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NODE", "IP", "MAC", "IMAGE", "PROFILES"]
    assert [line.split()[:2] for line in lines[1:]] == [["n02", "10.99.0.12"], ["n03", "10.99.0.13"]]
    as_json = json.loads(wwstatic("nodes", "--format", "json").stdout)
    assert [n["name"] for n in as_json] == ["n01", "n02", "n03", "n04"]
    assert as_json[3]["network"]["default"]["mac"] == "52:54:00:99:00:14"
    missing = wwstatic("nodes", "x[1-2]")
    assert missing.returncode == 1 and "no node matches" in missing.stderr


def test_show_says_where_each_field_came_from() -> None:
    done = wwstatic("show", "n02")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert "[profile default," in rows["kernel.args"]
    assert "10.99.0.12" in rows["network.default.ip"] and "[node," in rows["network.default.ip"]
    as_yaml = yaml.safe_load(wwstatic("show", "n02", "--format", "yaml").stdout)
    assert as_yaml["kernel"]["args"] == ["console=ttyS0", "quiet"]


def test_lint_reports_all_errors(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text(
        "head: {ip: 10.0.0.1, network: 10.0.0.0/24}\n"
        "images: {img: {root: /srv/img}}\n"
        "nodes:\n"
        "  a: {image: img, network: {default: {mac: '52:54:00:00:00:01', ip: 10.0.0.1}}}\n"
        "  b: {image: nope, network: {default: {mac: '52:54:00:00:00:01', ip: 10.0.0.3}}}\n"
        "  c: {imgae: img}\n"
    )
    done = wwstatic("lint", str(bad))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 4, done.stderr
    assert "already used by the head" in errors[0]
    assert "node b network default has MAC 52:54:00:00:00:01, already used by node a" in errors[1]
    assert "image `nope` is not defined" in errors[2]
    assert "did you mean `image`?" in done.stderr
    assert "4 errors; nothing was built" in done.stderr


def test_readme_example_loads(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## cluster.yaml"):]
    example = section[section.index("```yaml") + 7:section.index("```\n", section.index("```yaml"))]
    (tmp_path / "cluster.yaml").write_text(example)
    done = wwstatic("nodes", "--file", str(tmp_path / "cluster.yaml"), "--format", "json")
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout)
    assert [n["network"]["ib"]["ip"] for n in nodes] == ["10.100.0.11", "10.100.0.12", "10.100.0.13"]
    assert nodes[2]["kernel"]["args"] == ["crashkernel=no", "nouveau.modeset=0"]
    assert nodes[1]["ipmi"]["ip"] == "10.98.0.12"
