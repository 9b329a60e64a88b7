"""Unit and property tests of toolchain.hostlist: expand and compress."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.hostlist import MAX_HOSTS, HostlistError, compress, count, expand

VALID_NAME = re.compile(r"[A-Za-z0-9._-]+")

# --- expand ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "names"), [
    ("n01", ["n01"]),
    ("  n01 ", ["n01"]),
    ("n[01-04]", ["n01", "n02", "n03", "n04"]),
    ("n[1-3]", ["n1", "n2", "n3"]),
    ("n[8-10]", ["n8", "n9", "n10"]),          # width from the first number: none
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("n[001-3]", ["n001", "n002", "n003"]),
    ("n[7]", ["n7"]),
    ("n[3,1]", ["n3", "n1"]),                  # order as written
    ("n[1-2,5]", ["n1", "n2", "n5"]),
    ("a,b,c[1,3-5]", ["a", "b", "c1", "c3", "c4", "c5"]),
    ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),  # rightmost varies fastest
    ("n[1-2]-ib", ["n1-ib", "n2-ib"]),
    ("[1-2]", ["1", "2"]),
    ("x[1-2].y[3]", ["x1.y3", "x2.y3"]),
    ("n1,n1", ["n1", "n1"]),                   # expand keeps duplicates as written
    ("n[1-1]", ["n1"]),
])
def test_expand(text: str, names: list[str]) -> None:
    assert expand(text) == names


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty hostlist"),
    ("   ", "empty hostlist"),
    ("n[1-", "`[` without `]`"),
    ("n1-]", "`]` without `[`"),
    ("n]1[", "`]` without `[`"),
    ("n[[1]]", "brackets cannot nest"),
    ("n[]", "is not a number"),
    ("n[a]", "is not a number"),
    ("n[1-a]", "is not a number"),
    ("n[1-]", "is not a number"),
    ("n[-1]", "is not a number"),
    ("n[1--2]", "is not a number"),
    ("n[1,,2]", "is not a number"),
    ("n[3-1]", "goes backwards"),
    ("a,,b", "empty name between commas"),
    (",a", "empty name between commas"),
    ("a,", "empty name between commas"),
    ("n 1", "characters not allowed"),
    ("n/1", "characters not allowed"),
    ("n\u00e41", "characters not allowed"),
    # Not ASCII digits: `str.isdigit` says yes to these, int() or a host name does not.
    ("n[\u00b2]", "is not a number"),
    ("n[\u00b2-3]", "is not a number"),
    ("n[\u0661-\u0663]", "is not a number"),
    # Longer than any DNS label, and beyond int()'s 4300-digit limit.
    ("n[" + "1" * 64 + "]", "is not a number"),
    ("n[" + "1" * 5000 + "-" + "2" * 5000 + "]", "is not a number"),
])
def test_expand_rejects(text: str, problem: str) -> None:
    with pytest.raises(HostlistError, match=re.escape(problem)):
        expand(text)


def test_hostlist_error_is_a_value_error() -> None:
    assert issubclass(HostlistError, ValueError)


def test_expand_size_limit() -> None:
    assert len(expand(f"n[1-{MAX_HOSTS}]")) == MAX_HOSTS
    with pytest.raises(HostlistError, match="too large"):
        expand(f"n[0-{MAX_HOSTS}]")


@pytest.mark.parametrize("text", [
    # Each range is allowed alone; together they are too many. These must fail
    # before building the names (50 million here), not after.
    "n[" + ",".join(["0-999999"] * 50) + "]",
    "n[0-9999][0-9999][0-9999][0-9999]",
    ",".join(f"x{i}[0-999999]" for i in range(50)),
])
def test_expand_size_limit_counts_everything(text: str) -> None:
    with pytest.raises(HostlistError):
        expand(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_expand_junk_gives_names_or_hostlist_error(text: str) -> None:
    try:
        names = expand(text)
    except HostlistError:
        return
    assert names
    assert all(VALID_NAME.fullmatch(n) for n in names), names


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="n01239[]-,. \u00b2\u0661", max_size=25))
def test_expand_hostlist_like_junk_gives_names_or_hostlist_error(text: str) -> None:
    try:
        names = expand(text)
    except HostlistError:
        return
    assert all(VALID_NAME.fullmatch(n) for n in names), names


# --- compress ----------------------------------------------------------------


@pytest.mark.parametrize(("names", "text"), [
    ([], ""),
    (["n1"], "n1"),
    (["n01", "n02", "n03"], "n[01-03]"),
    (["n03", "n01", "n02", "n01"], "n[01-03]"),   # order and duplicates do not matter
    (["n1", "n3", "n4", "n5"], "n[1,3-5]"),
    (["n9", "n10"], "n[9-10]"),
    (["n09", "n10"], "n[09-10]"),
    (["n08", "n9", "n10"], "n[08,9-10]"),
    (["n1", "n01"], "n[1,01]"),
    (["b", "a"], "a,b"),
    (["head", "n1", "n2"], "head,n[1-2]"),
    (["r1n1", "r1n2", "r2n1"], "r1n[1-2],r2n1"),
    (["n1-ib", "n2-ib"], "n[1-2]-ib"),
    (["1", "2", "3"], "[1-3]"),
])
def test_compress(names: list[str], text: str) -> None:
    assert compress(names) == text


# Names made to share prefixes, suffixes and numbers (with and without zero
# padding), so that compress has runs to find; plus arbitrary valid names.
_numbered = st.builds(
    lambda prefix, number, width, suffix: f"{prefix}{str(number).zfill(width)}{suffix}",
    st.sampled_from(["n", "r1n", "", "a-", "x.y", "node_"]),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=4),
    st.sampled_from(["", "x", "-ib", ".b"]),
)
_any_name = st.from_regex(r"[A-Za-z0-9._-]{1,10}", fullmatch=True)
NAMES = st.lists(st.one_of(_numbered, _any_name), min_size=1, max_size=40)


@settings(max_examples=500, deadline=None)
@given(NAMES)
def test_expand_compress_round_trip(names: list[str]) -> None:
    out = expand(compress(names))
    assert len(out) == len(set(out)), "each name once"
    assert sorted(out) == sorted(set(names))


@settings(max_examples=200, deadline=None)
@given(NAMES, st.randoms(use_true_random=False))
def test_compress_ignores_order_and_duplicates(names: list[str], rnd: random.Random) -> None:
    shuffled = names + names[: len(names) // 2]
    rnd.shuffle(shuffled)
    assert compress(shuffled) == compress(names)


@settings(max_examples=200, deadline=None)
@given(NAMES)
def test_compress_is_canonical(names: list[str]) -> None:
    text = compress(names)
    assert compress(expand(text)) == text


# Hostlists as people write them: prefix, ranges, suffix.
_ranges = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 20), st.integers(1, 3)).map(
        lambda t: f"{str(t[0]).zfill(t[2])}-{str(t[0] + t[1]).zfill(t[2])}" if t[1] else str(t[0])),
    min_size=1, max_size=4)
HOSTLISTS = st.lists(
    st.builds(lambda p, r, s: f"{p}[{','.join(r)}]{s}",
              st.sampled_from(["n", "r1n", "gpu-", ""]), _ranges, st.sampled_from(["", "-ib"])),
    min_size=1, max_size=3).map(",".join)


@settings(max_examples=300, deadline=None)
@given(HOSTLISTS)
def test_compress_of_expanded_hostlist_round_trips(text: str) -> None:
    names = expand(text)
    assert all(VALID_NAME.fullmatch(n) for n in names)
    assert sorted(expand(compress(names))) == sorted(set(names))


@settings(max_examples=300, deadline=None)
@given(HOSTLISTS)
def test_count_is_the_length_of_the_expansion(text: str) -> None:
    assert count(text) == len(expand(text))


@pytest.mark.parametrize("text", ["n[1-2]x[1-3]", "a,b[01-10],c[1,3-5]", "n[0-999999]"])
def test_count_without_expanding(text: str) -> None:
    assert count(text) == len(expand(text))
    with pytest.raises(HostlistError):
        count(text + ",n[1-9999999]")   # past MAX_HOSTS, refused as expand refuses it
