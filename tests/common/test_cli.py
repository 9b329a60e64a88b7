"""The inspection commands and the shipped JSON Schema."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.project import REPO, make_project
from toolchain import cli
from toolchain.model import spec
from toolchain.verbs import Verb


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
    # Some named nodes exist, some do not: still an error, naming those that do not.
    partly = wwstatic("nodes", "n01,n0022,n[04-05]")
    assert partly.returncode == 1 and partly.stdout == "", partly.stdout
    assert "2 of the nodes named do not exist: n[05,0022]" in partly.stderr, partly.stderr
    assert "Traceback" not in partly.stderr and len(partly.stderr.splitlines()) == 2


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
    done = wwstatic("lint", "-f", str(bad))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 4, done.stderr
    assert "already used by the head" in errors[0]
    # In file order: the duplicate MAC is reported where it is written, after b's image.
    assert "image `nope` is not defined" in errors[1]
    assert "node b network default has MAC 52:54:00:00:00:01, already used by node a" in errors[2]
    assert ":5:14: error: image" in errors[1] and ":5:45: error: node b" in errors[2], errors
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


# --- one convention: shared options, -C, -f, --debug, errors ----------------------

def leaf_parsers(p: argparse.ArgumentParser,
                 path: tuple[str, ...] = ()) -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser (`overlay list`, not `overlay`), read from the parser itself."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {" ".join(path): p}
    return {name: leaf for a in subs for verb, child in a.choices.items()
            for name, leaf in leaf_parsers(child, (*path, verb)).items()}


def test_every_verb_takes_the_shared_options() -> None:
    verbs = leaf_parsers(cli.parser())
    assert {"lint", "nodes", "build", "serve", "import-warewulf", "overlay info"} <= set(verbs)
    for name, p in verbs.items():
        options = {s for a in p._actions for s in a.option_strings}
        assert {"-f", "--file", "-C"} <= options, name
        assert "--project" not in options, name
        args = cli.parser().parse_args(["-C", "/x", *name.split(), "-f", "y.yaml", *positionals(p)])
        assert (args.directory, args.file) == ("/x", "y.yaml"), name
    assert "file" not in {a.dest for a in verbs["lint"]._actions if not a.option_strings}


def positionals(p: argparse.ArgumentParser) -> list[str]:
    """Values for a verb's required positionals (a valid choice where there are choices)."""
    return [next(iter(a.choices)) if a.choices else "x" for a in p._actions
            if not a.option_strings and a.nargs not in ("?", "*", argparse.REMAINDER)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("cli") / "site")


def test_C_runs_a_verb_in_another_directory(site: Path, tmp_path: Path) -> None:
    lint = wwstatic("-C", str(site), "lint", cwd=tmp_path)
    assert lint.returncode == 0 and f"{site}/cluster.yaml: 4 nodes" in lint.stdout, lint.stderr
    nodes = wwstatic("nodes", "-C", str(site), "--format", "json", cwd=tmp_path)
    assert nodes.returncode == 0, nodes.stderr
    assert [n["name"] for n in json.loads(nodes.stdout)] == ["n01", "n02", "n03", "n04"]
    built = wwstatic("-C", str(site), "build", "tftp", cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (site / "output/tftp/undionly.kpxe").is_file()
    assert not any(tmp_path.iterdir())


def test_build_reads_the_cluster_file_f_names(site: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((site / "cluster.yaml").read_text())
    nodes = data["nodes"].pop("n[01-04]")
    nodes["network"]["default"]["mac"].pop()
    data["nodes"]["n[01-03]"] = nodes
    other = site / "three.yaml"
    other.write_text(yaml.safe_dump(data, sort_keys=False))
    elsewhere = tmp_path / "three.yaml"
    elsewhere.write_text(other.read_text())
    default = wwstatic("-C", str(site), "build", "list", "--all", cwd=tmp_path)
    assert default.returncode == 0 and "node:n04" in default.stdout, default.stderr
    named = wwstatic("-C", str(site), "-f", str(other), "build", "list", "--all", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "node:n03" in named.stdout and "node:n04" not in named.stdout
    # Relative to DIR, not to the caller's directory (which holds another three.yaml).
    relative = wwstatic("-C", str(site), "-f", "three.yaml", "build", "list", "--all", cwd=tmp_path)
    assert relative.stdout == named.stdout, relative.stderr
    outside = wwstatic("-C", str(site), "-f", str(elsewhere), "build", "list", cwd=tmp_path)
    assert outside.returncode == 1 and "Traceback" not in outside.stderr
    assert outside.stderr.startswith(f"wwstatic: error: -f {elsewhere}: the build reads"), outside.stderr


def test_debug_turns_logging_on(site: Path) -> None:
    quiet = wwstatic("-C", str(site), "nodes")
    loud = wwstatic("--debug", "-C", str(site), "nodes")
    assert quiet.returncode == loud.returncode == 0
    assert "DEBUG" not in quiet.stderr
    assert f"DEBUG: wwstatic nodes in {site}, cluster file {site}/cluster.yaml" in loud.stderr


@pytest.mark.parametrize("verb", [["lint"], ["nodes"], ["show", "n01"], ["build"]])
def test_a_missing_cluster_file_is_one_error_line(tmp_path: Path, verb: list[str]) -> None:
    done = wwstatic("-C", str(tmp_path), *verb)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"wwstatic: error: {tmp_path}/cluster.yaml does not exist"], done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "VERBS", [Verb("boom", "always fails", run=broken)])
    assert cli.main(["boom"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "wwstatic: internal error: RuntimeError: a bug"
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "boom"])
