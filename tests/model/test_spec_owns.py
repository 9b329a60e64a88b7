"""The field table (spec.py) is the one place a setting's default and choices are written.

The dataclasses, the loader and the Warewulf importer take them from there;
these tests fail when one of them grows its own copy, or when a setting is added
to the table and forgotten by the model or the importer.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.model import load
from toolchain import archive
from toolchain.model import spec, types
from toolchain.model.spec import Field, Kind
from toolchain.model.warewulf import entities, output, server
from toolchain.project import PACKAGE

MODEL_CLASSES = sorted((c for c in vars(types).values()
                        if isinstance(c, type) and dataclasses.is_dataclass(c)
                        and c.__module__ == types.__name__), key=lambda c: c.__name__)
NESTED = (Kind.STRUCT, Kind.DICT, Kind.ITEMS)


def walk(fields: tuple[Field, ...], prefix: str = "") -> Iterator[tuple[str, Field]]:
    for f in fields:
        yield prefix + f.key, f
        yield from walk(f.fields, f"{prefix}{f.key}.")


def model_value(f: Field) -> Any:
    """A setting's default as the model holds it: lists as tuples, unset text as ""."""
    value = f.unset()
    if isinstance(value, list):
        return tuple(value)
    return "" if value is None else value


def test_there_are_model_classes() -> None:
    names = {c.__name__ for c in MODEL_CLASSES}
    assert {"Cluster", "Head", "Node", "NetDev", "Ipmi", "Image", "Debootstrap", "Dhcp"} <= names


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_model_field_names_its_setting_or_says_why_it_has_none(cls: type) -> None:
    for fld in dataclasses.fields(cls):
        meta = fld.metadata
        assert ("spec" in meta) != ("derived" in meta), \
            f"{cls.__name__}.{fld.name}: give it from_spec()/required() or derived()"
        if "spec" in meta:
            spec.field_at(meta["spec"])  # KeyError: the path names no setting


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_model_defaults_are_the_tables(cls: type) -> None:
    for fld in dataclasses.fields(cls):
        if "spec" not in fld.metadata:
            continue
        f = spec.field_at(fld.metadata["spec"])
        if fld.default is not dataclasses.MISSING:
            default = fld.default
        elif fld.default_factory is not dataclasses.MISSING:
            default = fld.default_factory()
        else:
            continue  # the loader always fills it
        what = f"{cls.__name__}.{fld.name}"
        if f.kind in NESTED and dataclasses.is_dataclass(default):
            nested: Any = type(default)
            assert default == nested(), f"{what}: a nested default must be its class's defaults"
        elif f.kind in NESTED and default is None:
            continue  # an optional section: Image.debootstrap
        else:
            assert default == model_value(f), f"{what} defaults to {default!r}, the table to {f.default!r}"
            assert type(default) is type(model_value(f)), what


# Each section's dataclass: a new setting of the section must be held by one of its fields.
HOLDERS = {"Head": "head", "Dhcp": "dhcp", "Image": "images", "Debootstrap": "images.debootstrap",
           "Node": "nodes", "Kernel": "nodes.kernel", "Ipmi": "nodes.ipmi", "NetDev": "nodes.network",
           "Export": "nfs.exports"}


@pytest.mark.parametrize(("name", "path"), sorted(HOLDERS.items()))
def test_every_setting_of_a_section_is_held_by_its_dataclass(name: str, path: str) -> None:
    cls = getattr(types, name)
    held = [str(fld.metadata["spec"]) for fld in dataclasses.fields(cls) if "spec" in fld.metadata]
    held += [s for fld in dataclasses.fields(cls) for s in fld.metadata.get("from", ())]
    for f in spec.field_at(path).fields:
        key = f"{path}.{f.key}"
        assert any(h == key or h.startswith(key + ".") for h in held), f"{key} is in no field of {name}"


CLUSTER = """\
head: {ip: 10.0.0.1, network: 10.0.0.0/24}
nfs: {exports: [{path: /home}]}
images:
  small: {demo: {}}
  deb: {debootstrap: {suite: bookworm}}
nodes:
  n1:
    image: small
    network: {default: {mac: "52:54:00:00:00:01", ip: 10.0.0.11}}
    ipmi: {ip: 10.0.1.11}
"""


def instances(obj: Any) -> Iterator[Any]:
    """Every dataclass instance reachable from `obj`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        yield obj
        for fld in dataclasses.fields(obj):
            if fld.compare:
                yield from instances(getattr(obj, fld.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from instances(v)
    elif isinstance(obj, tuple | list):
        for v in obj:
            yield from instances(v)


def test_loader_fills_in_the_tables_defaults(tmp_path: Path) -> None:
    # Everything optional left out: what the loader gives is the table's default.
    checked = set()
    for obj in instances(load(tmp_path, CLUSTER)):
        for fld in dataclasses.fields(obj):
            f = spec.field_at(fld.metadata["spec"]) if "spec" in fld.metadata else None
            if f is None or f.default is None or f.kind in NESTED:
                continue
            value = getattr(obj, fld.name)
            assert value == model_value(f), f"{type(obj).__name__}.{fld.name} is {value!r}"
            checked.add(fld.metadata["spec"])
    assert {"nodes.ipmi.port", "nodes.network.type", "nfs.exports.options", "dhcp.lease_time",
            "images.debootstrap.variant", "images.compression", "head.access_log"} <= checked


# --- the Warewulf importer ------------------------------------------------------

def test_importer_writes_settings_in_the_tables_order() -> None:
    # A setting added to the table is written too, where the reference has it.
    assert tuple(f.key for f in spec.NODE) == output.SETTINGS_ORDER
    assert tuple(f.key for f in spec.NETDEV) == output.NETDEV_ORDER
    assert "standalone_iso" in output.SETTINGS_ORDER


@pytest.mark.parametrize(("table", "path"), [
    (entities.NETDEV_TYPES, "nodes.network.type"),
    (entities.IPMI_INTERFACES, "nodes.ipmi.interface"),
    (entities.FS_FORMATS, "nodes.filesystems.format"),
])
def test_importer_choices_are_the_tables(table: tuple[str, ...], path: str) -> None:
    # The same object, not an equal copy: a copy would not follow a change of the table.
    assert table is spec.field_at(path).choices


def test_importer_defaults_are_the_tables() -> None:
    assert spec.field_at("nfs.exports.options").default is server.DEFAULT_EXPORT_OPTIONS
    assert spec.field_at("dhcp.lease_time").default is server.DEFAULT_LEASE_TIME


def test_compression_choices_are_what_the_archive_writer_knows() -> None:
    # archive.py (below the model) owns the names; the table must offer exactly those.
    f = spec.field_at("images.compression")
    assert f.choices == tuple(c.value for c in archive.Compression)
    assert f.default in f.choices


# --- no copy of a default anywhere else ---------------------------------------------

# Defaults that are also ordinary words of the code, with other meanings.
COMMON_WORDS = {
    "default": "also a network device name and a debootstrap variant",
    "gzip": "also archive.Compression's value and libarchive's filter name",
}
# Known uses outside the model, each for its own reason.
ELSEWHERE = {
    ("lanplus", "ops/power.py"): "ipmitool's -C (cipher suite) is for the lanplus interface only",
}


def distinctive_defaults() -> set[str]:
    found: set[str] = set()
    for _, f in walk(spec.TOP):
        values = f.default if isinstance(f.default, list) else [f.default]
        found |= {v for v in values if isinstance(v, str)}
    return found - set(COMMON_WORDS)


def string_constants(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def copies(root: Path) -> list[str]:
    wanted = distinctive_defaults()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root))
        if rel == "model/spec.py":
            continue
        for line, text in string_constants(path):
            if text in wanted and (text, rel) not in ELSEWHERE:
                out.append(f"{rel}:{line}: {text!r}")
    return out


def test_defaults_are_written_only_in_the_table() -> None:
    assert {"rw,sync,no_subtree_check", "lanplus", "minbase", "/sbin/init"} <= distinctive_defaults()
    found = copies(PACKAGE)
    assert not found, "defaults written outside spec.py (take them from the table):\n" + "\n".join(found)


def test_the_scan_sees_a_copied_default(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model/types.py").write_text('"""minbase in a docstring is fine."""\n'
                                             'VARIANT = "minbase"\n')
    assert copies(tmp_path) == ["model/types.py:2: 'minbase'"]
