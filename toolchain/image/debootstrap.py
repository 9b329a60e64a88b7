"""The debootstrap builder: a Debian root directory from a Debian mirror.

The mirror defaults to the one this machine's apt already uses (a site that
runs a local mirror or proxy gets it for free). A built root is kept in the
user's cache, named by everything that went into it (suite, variant, packages,
components, mirror), so it is made once; the .debs are cached beside it so a
changed package list downloads only what is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from toolchain.errors import WWError
from toolchain.fsutil import temp_dir
from toolchain.model.types import Debootstrap
from toolchain.proc import run

APT = Path("/etc/apt")
FORMAT = 1  # bump when the way roots are built changes, to build them again


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wwstatic" / "debootstrap"


def _deb822_mirrors(text: str) -> list[str]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if ("deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no"
                and _is_base(fields.get("suites", "").split())):
            out += fields.get("uris", "").split()
    return out


def _list_mirrors(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and _is_base([words[1]]):
            out.append(words[0])
    return out


def _is_base(suites: list[str]) -> bool:
    """A release's main archive, not its security or updates side archive."""
    return any("-" not in s and "/" not in s for s in suites)


def apt_mirror(apt: Path = APT) -> str:
    """The first Debian archive this machine's apt sources name."""
    found: list[str] = []
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        found += _deb822_mirrors(path.read_text(errors="replace"))
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            found += _list_mirrors(path.read_text(errors="replace"))
    if not found:
        raise WWError(f"no Debian mirror found in {apt}/sources.list or {apt}/sources.list.d",
                      hint="set `debootstrap.mirror` of the image in cluster.yaml")
    return found[0]


def recipe(spec: Debootstrap, apt: Path = APT) -> dict[str, object]:
    """Everything the root depends on, with the mirror looked up."""
    d = asdict(spec)
    d["include"] = sorted(spec.include)
    d["mirror"] = spec.mirror or apt_mirror(apt)
    d["format"] = FORMAT
    return d


def root_dir(spec: Debootstrap, apt: Path = APT) -> Path:
    text = json.dumps(recipe(spec, apt), sort_keys=True)
    return cache_root() / hashlib.sha256(text.encode()).hexdigest()[:16] / "rootfs"


def is_built(spec: Debootstrap, apt: Path = APT) -> bool:
    return (root_dir(spec, apt).parent / "done").exists()


def build_root(spec: Debootstrap, apt: Path = APT) -> Path:
    """The root for `spec`, built now unless the cache has it; returns its directory."""
    dest = root_dir(spec, apt)
    if is_built(spec, apt):
        return dest
    if os.geteuid() != 0:
        raise WWError("debootstrap images are built as root (packages install files owned by "
                      "other users and device nodes)", hint="run the build as root, or build the "
                      "root yourself and use `root:` or `tarball:`")
    if shutil.which("debootstrap") is None:
        raise WWError("debootstrap is not installed", hint="apt-get install debootstrap")
    r = recipe(spec, apt)
    debs = cache_root() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(dest.parent, "build") as tmp:
        work = Path(tmp) / "rootfs"
        argv: list[str | Path] = ["debootstrap", f"--cache-dir={debs}"]
        if spec.variant != "default":
            argv.append(f"--variant={spec.variant}")
        if spec.include:
            argv.append("--include=" + ",".join(sorted(spec.include)))
        argv += [f"--components={','.join(spec.components)}", spec.suite, work, str(r["mirror"])]
        run(argv, hint=f"check the suite, the package names and that {r['mirror']} is reachable")
        # Mounts debootstrap may leave behind must not end up in an image.
        for sub in ("proc", "sys"):
            if os.path.ismount(work / sub):
                run(["umount", "-l", work / sub])
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
    (dest.parent / "recipe.json").write_text(json.dumps(r, sort_keys=True, indent=1) + "\n")
    (dest.parent / "done").touch()
    return dest
