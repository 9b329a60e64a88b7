"""Property tests of the input readers: any input gives a result or a clear error.

The YAML loader (yamlsrc + model.load_cluster) on random text, on random
mutations of the shipped cluster.yaml and on random values put into it; the
merge of profiles (reader.apply_list, deep_merge, merge through load_cluster);
wwclient's manifest parser on arbitrary JSON and bytes. Never another exception,
never a hang: each example runs under a hard time limit (SIGALRM), since
hypothesis's own deadline only measures examples that end. Hostlists and
wwclient's archive reader have their property tests in test_hostlist.py and
test_wwclient.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.project import REPO
from toolchain.errors import WWError
from toolchain.model.load import load_cluster
from toolchain.model.reader import apply_list, deep_merge
from toolchain.model.types import Cluster
from toolchain.model.yamlsrc import load_text
from toolchain.node import wwclient

SHIPPED = (REPO / "cluster.yaml").read_text()
LIMIT = 10   # seconds: an example this slow is a hang (they take milliseconds)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float = LIMIT) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory with the shipped overlays, for cluster.yaml files to load."""
    dest = tmp_path_factory.mktemp("props")
    shutil.copytree(REPO / "overlays", dest / "overlays")
    return dest


def load(site: Path, text: str) -> Cluster | WWError:
    path = site / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    with time_limit():
        try:
            return load_cluster(path)
        except WWError as err:
            assert str(err).strip(), "an error without a message"
            return err


# --- YAML text ----------------------------------------------------------------------

YAML_CHARS = st.sampled_from([*"abn01:-[]{},&*!|>'\"#%@`?~ \t\n.<=\\", "\u00e9", "\x00", "\ufeff"])


@SETTINGS
@given(text=st.text(YAML_CHARS, max_size=200))
def test_random_text_gives_a_cluster_or_a_clear_error(site: Path, text: str) -> None:
    load(site, text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The shipped cluster.yaml with a few characters or lines deleted, inserted or swapped."""
    text = SHIPPED
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "line-drop", "line-dup", "line-swap"]))
        if op in ("delete", "insert", "replace"):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 8)) if op != "insert" else 0
            new = draw(st.text(YAML_CHARS, max_size=6)) if op != "delete" else ""
            text = text[:at] + new + text[at + cut:]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "line-drop":
                del lines[i]
            elif op == "line-dup":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@SETTINGS
@given(text=mutated())
def test_mutated_cluster_yaml_gives_a_cluster_or_a_clear_error(site: Path, text: str) -> None:
    load(site, text)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["52:54:00:99:00:11", "10.99.0.300", "n[01-99999999]", "~x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


PATHS = list(_paths(yaml.safe_load(SHIPPED)))


@SETTINGS
@given(where=st.sampled_from(PATHS[1:]), value=VALUES, key=st.none() | st.text(max_size=8))
def test_any_value_anywhere_gives_a_cluster_or_a_clear_error(site: Path, where: tuple[Any, ...],
                                                              value: Any, key: str | None) -> None:
    data = yaml.safe_load(SHIPPED)
    parent = data
    for step in where[:-1]:
        parent = parent[step]
    if key is not None and isinstance(parent, dict):
        parent[key] = value          # a new key beside the old one
    else:
        parent[where[-1]] = value    # the value replaced
    load(site, yaml.safe_dump(data, allow_unicode=True))


def test_alias_bombs_and_deep_nesting_are_refused_quickly() -> None:
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    cases = {"\n".join(laughs): "YAML aliases expand to",
             "[" * 5000 + "]" * 5000: "YAML nested too deeply",
             "a: " + "{b: " * 600 + "c" + "}" * 600: "YAML nested too deeply"}
    for text, message in cases.items():
        with time_limit(5), pytest.raises(WWError, match=message):
            load_text(text, "cluster.yaml")


# --- the merge ----------------------------------------------------------------------

ITEMS = st.lists(st.sampled_from(["a", "b", "c", "~a", "~b", "~c", "~d"]), max_size=6)
FREE = st.recursive(st.integers(0, 3) | st.text("xy", max_size=2),
                    lambda inner: st.dictionaries(st.sampled_from("pqr"), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(acc=ITEMS.filter(lambda xs: not any(x.startswith("~") for x in xs)), first=ITEMS, then=ITEMS)
def test_apply_list_applies_items_one_after_another(acc: list[str], first: list[str],
                                                    then: list[str]) -> None:
    once = apply_list(acc, first + then)
    assert apply_list(apply_list(acc, first), then) == once
    assert not any(x.startswith("~") for x in once)
    for item in then:
        if item.startswith("~"):
            later = then[len(then) - then[::-1].index(item):]
            assert item[1:] not in once or item[1:] in later
    assert apply_list(acc, []) == acc


@settings(max_examples=300, deadline=None)
@given(a=FREE, b=FREE, c=FREE)
def test_deep_merge_is_a_left_fold_of_overrides(a: Any, b: Any, c: Any) -> None:
    snapshot = json.dumps([a, b, c], sort_keys=True)
    merged = deep_merge(deep_merge(a, b), c)
    assert json.dumps([a, b, c], sort_keys=True) == snapshot, "merge changed its inputs"
    assert deep_merge(a, a) == a
    if isinstance(a, dict):
        assert deep_merge(a, {}) == a and deep_merge({}, a) == a
    if not isinstance(c, dict):
        assert merged == c                     # anything but a map replaces
    else:
        assert set(merged) >= set(c)           # every key of the last layer is there...
        for k, v in c.items():
            if not isinstance(v, dict):
                assert merged[k] == v          # ...with its own value when it is no map


def _removes_nothing(acc: list[str], items: list[str]) -> bool:
    for item in items:
        if item.startswith("~") and item[1:] not in acc:
            return True
        acc = apply_list(acc, [item])
    return False


Layer = tuple[list[str], dict[str, str], Any]   # a profile's kernel args, tags, resources


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.lists(st.tuples(ITEMS, st.dictionaries(st.sampled_from("xyz"), st.text("uv", max_size=2),
                                                        max_size=2), FREE), min_size=1, max_size=4),
       order=st.permutations(range(4)), own=ITEMS)
def test_profiles_merge_in_order_through_load_cluster(site: Path, layers: list[Layer], order: list[int],
                                                      own: list[str]) -> None:
    data = yaml.safe_load(SHIPPED)
    base = data["profiles"]["default"]
    base["kernel"]["args"] = []
    data["profiles"] = {"default": base}
    for i, (args, tags, resources) in enumerate(layers):
        data["profiles"][f"p{i}"] = {"kernel": {"args": args}, "tags": tags, "resources": {"r": resources}}
    chosen = ["default", *(f"p{i}" for i in order if i < len(layers))]
    node = data["nodes"]["n[01-04]"]
    node["profiles"] = chosen
    node["kernel"] = {"args": own}
    result = load(site, yaml.safe_dump(data))
    want_args: list[str] = []
    want_tags: dict[str, str] = {}
    want_res: Any = {}
    idle = False    # some `~x` removes nothing: a typo, which loading must refuse
    for i in (i for i in order if i < len(layers)):
        args, tags, resources = layers[i]
        idle |= _removes_nothing(want_args, args)
        want_args = apply_list(want_args, args)
        want_tags = {**want_tags, **tags}
        want_res = deep_merge(want_res, {"r": resources})
    idle |= _removes_nothing(want_args, own)
    want_args = apply_list(want_args, own)
    if idle:
        assert isinstance(result, WWError) and "which nothing set before" in str(result), result
        return
    assert isinstance(result, Cluster), result
    for n in result.nodes:
        assert list(n.kernel.args) == want_args
        assert n.tags == want_tags
        assert n.resources == want_res


# --- wwclient's manifests --------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)
HEX = st.text("0123456789abcdefABCDEF", min_size=63, max_size=65)
LAYER = st.fixed_dictionaries({}, optional={
    "url": st.sampled_from(["shared/a.img.gz", "nodes/n01/x.img.gz", "../etc/passwd", "/abs", "http://x/y",
                            "a//b", "a b", "", "a?b"]) | st.text(max_size=12) | JSON,
    "sha256": HEX | JSON, "size": st.integers(-2, 2**40) | JSON,
    "include": st.sampled_from(["groups/g.json", "../g.json"]) | JSON})
MANIFEST = st.fixed_dictionaries({}, optional={
    "format": st.sampled_from([1, 2, "1", True]) | JSON, "node": st.sampled_from(["n01", "n02"]) | JSON,
    "interval": st.sampled_from([0, 1, 60, 86400, 86401, True, float("inf")]) | JSON,
    "layers": st.lists(LAYER | JSON, max_size=4) | JSON, "setuid": st.lists(st.text(max_size=8)) | JSON})


def parse(data: bytes) -> None:
    with time_limit():
        for fn in (lambda: wwclient.parse_manifest(data, "n01"), lambda: wwclient.parse_included(data)):
            try:
                result = fn()
            except wwclient.Rejected as exc:
                assert str(exc)
                continue
            layers = result if isinstance(result, list) else list(result.layers)
            for layer in layers:
                assert isinstance(layer, wwclient.Layer | wwclient.Include)
                assert ".." not in layer.url.split("/") and not layer.url.startswith("/")
                if isinstance(layer, wwclient.Layer):
                    assert len(layer.sha256) == 64 and layer.size >= 0


@settings(max_examples=400, deadline=None)
@given(doc=MANIFEST | JSON)
def test_any_json_manifest_is_parsed_or_rejected(doc: Any) -> None:
    parse(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_any_bytes_as_a_manifest_are_parsed_or_rejected(data: bytes) -> None:
    parse(data)


def test_a_deeply_nested_manifest_is_rejected() -> None:
    # json.loads recurses: a manifest of 100,000 brackets must be refused, not crash wwclient.
    parse(b"[" * 100_000 + b"]" * 100_000)
