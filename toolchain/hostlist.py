"""Slurm/Warewulf hostlists: `n[01-04]`, `r[1-2]n[01-32]`, `a,b,c[1,3-5]`.

`expand` keeps the order written (ranges ascending as written, brackets
left-to-right with the rightmost varying fastest, as Slurm does); zero padding
comes from the width of a range's first number.
"""

from __future__ import annotations

import itertools
import re

_NAME = re.compile(r"[A-Za-z0-9._-]*\Z")
# ASCII digits only (str.isdigit accepts `²`, which int() rejects), and no more
# than fit in a DNS label (which keeps int() far below Python's 4300-digit limit).
_NUMBER = re.compile(r"[0-9]{1,63}\Z")
MAX_HOSTS = 1_000_000


class HostlistError(ValueError):
    pass


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise HostlistError("brackets cannot nest")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError("`]` without `[`")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise HostlistError("`[` without `]`")
    parts.append(cur)
    return parts


def _bounds(spec: str) -> list[tuple[str, int, int]]:
    """Each item of a bracket: (first number as written, first, last), checked."""
    out: list[tuple[str, int, int]] = []
    size = 0
    for item in spec.split(","):
        lo, sep, hi = item.partition("-")
        if not _NUMBER.match(lo) or (sep and not _NUMBER.match(hi)):
            raise HostlistError(f"`{item}` is not a number or a range like 01-32")
        start, end = int(lo), int(hi) if sep else int(lo)
        if end < start:
            raise HostlistError(f"range `{item}` goes backwards")
        size += end - start + 1
        # Counted before the names are built, so a typo cannot eat all memory.
        if size > MAX_HOSTS:
            raise HostlistError(f"range `{item}` is too large")
        out.append((lo, start, end))
    return out


def _numbers(bounds: list[tuple[str, int, int]]) -> list[str]:
    # Zero padding from the width of the first number, as written.
    return [str(i).zfill(len(lo)) for lo, start, end in bounds for i in range(start, end + 1)]


def _pieces(word: str) -> list[str | list[tuple[str, int, int]]]:
    """A word's literal parts and brackets, checked; raise HostlistError past MAX_HOSTS."""
    pieces: list[str | list[tuple[str, int, int]]] = []
    total = 1
    for m in re.finditer(r"\[([^\]]*)\]|([^\[\]]+)", word):
        if m.group(2) is not None:
            if not _NAME.match(m.group(2)):
                raise HostlistError(f"`{m.group(2)}` has characters not allowed in a host name")
            pieces.append(m.group(2))
            continue
        bounds = _bounds(m.group(1))
        pieces.append(bounds)
        # Checked per piece: `n[0-9999][0-9999]...` must stop before it grows.
        total *= sum(end - start + 1 for _, start, end in bounds)
        if total > MAX_HOSTS:
            raise HostlistError(f"expands to {total} names, more than {MAX_HOSTS}")
    return pieces


def _words(text: str) -> list[str]:
    text = text.strip()
    if not text:
        raise HostlistError("empty hostlist")
    words = _split_top(text)
    if not all(words):
        raise HostlistError("empty name between commas")
    return words


def count(text: str) -> int:
    """How many names `text` expands to, without building them; HostlistError as `expand`."""
    total = 0
    for word in _words(text):
        size = 1
        for piece in _pieces(word):
            if not isinstance(piece, str):
                size *= sum(end - start + 1 for _, start, end in piece)
        total += size
        if total > MAX_HOSTS:
            raise HostlistError(f"expands to more than {MAX_HOSTS} names")
    return total


def expand(text: str) -> list[str]:
    """All names in `text`, in order; raise HostlistError if malformed."""
    names: list[str] = []
    for word in _words(text):
        parts = [[p] if isinstance(p, str) else _numbers(p) for p in _pieces(word)]
        names.extend("".join(combo) for combo in itertools.product(*parts))
        if len(names) > MAX_HOSTS:
            raise HostlistError(f"expands to more than {MAX_HOSTS} names")
    return names


def compress(names: list[str]) -> str:
    """A short hostlist that expands to exactly `names` (sorted, duplicates dropped)."""
    groups: dict[tuple[str, str], list[str]] = {}
    plain: list[str] = []
    for name in set(names):
        m = re.match(r"(.*?)(\d+)(\D*)\Z", name)
        if m:
            groups.setdefault((m.group(1), m.group(3)), []).append(m.group(2))
        else:
            plain.append(name)
    out = sorted(plain)
    for (prefix, suffix), digits in sorted(groups.items()):
        digits.sort(key=lambda d: (int(d), len(d)))
        runs: list[list[str]] = []
        for d in digits:
            run = runs[-1] if runs else None
            # A run `a-b` expands with the width of `a`: extend it only if `d`
            # is exactly what that expansion would produce next.
            if run and int(d) == int(run[-1]) + 1 and d == str(int(d)).zfill(len(run[0])):
                run.append(d)
            else:
                runs.append([d])
        text = ",".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
        single = len(runs) == 1 and len(runs[0]) == 1
        out.append(f"{prefix}{text}{suffix}" if single else f"{prefix}[{text}]{suffix}")
    return ",".join(out)
