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


def _range(spec: str) -> list[str]:
    out: list[str] = []
    for item in spec.split(","):
        lo, sep, hi = item.partition("-")
        if not _NUMBER.match(lo) or (sep and not _NUMBER.match(hi)):
            raise HostlistError(f"`{item}` is not a number or a range like 01-32")
        if not sep:
            out.append(lo)
            continue
        start, end = int(lo), int(hi)
        if end < start:
            raise HostlistError(f"range `{item}` goes backwards")
        # Counted before the names are built, so a typo cannot eat all memory.
        if len(out) + end - start >= MAX_HOSTS:
            raise HostlistError(f"range `{item}` is too large")
        width = len(lo)
        out.extend(str(i).zfill(width) for i in range(start, end + 1))
    return out


def _expand_one(word: str) -> list[str]:
    pieces: list[list[str]] = []
    total = 1
    for m in re.finditer(r"\[([^\]]*)\]|([^\[\]]+)", word):
        if m.group(2) is not None:
            if not _NAME.match(m.group(2)):
                raise HostlistError(f"`{m.group(2)}` has characters not allowed in a host name")
            pieces.append([m.group(2)])
        else:
            pieces.append(_range(m.group(1)))
        # Checked per piece: `n[0-9999][0-9999]...` must stop before it grows.
        total *= len(pieces[-1])
        if total > MAX_HOSTS:
            raise HostlistError(f"expands to {total} names, more than {MAX_HOSTS}")
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand(text: str) -> list[str]:
    """All names in `text`, in order; raise HostlistError if malformed."""
    text = text.strip()
    if not text:
        raise HostlistError("empty hostlist")
    names: list[str] = []
    for word in _split_top(text):
        if not word:
            raise HostlistError("empty name between commas")
        names.extend(_expand_one(word))
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
