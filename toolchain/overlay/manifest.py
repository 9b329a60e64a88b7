"""Owner, group, mode and secrecy of overlay files, from a manifest kept in git.

Git records only a file's executable bit, and a non-root build cannot chown, so
an overlay's metadata cannot come from the checkout (Warewulf #1079, #2281).
It comes from `overlays/NAME/manifest.yaml`, beside `rootfs/`:

    # path or glob inside rootfs (the output path: `.j2` dropped): settings
    etc/ssh/ssh_host_*_key: {mode: "0600", secret: true}
    root/.ssh: {mode: "0700"}
    var/spool/app: {owner: 1001, group: 1001, mode: "0750"}

- Patterns match the output path with fnmatch (`*` also crosses `/`); every
  matching entry applies in file order, so a later, more specific line wins.
- `owner`/`group`: a number, or `root` (0) or `nobody`/`nogroup` (65534), the
  only names with the same number on every distribution. Other names would need
  the image's /etc/passwd, which the build does not read: write the number.
- `mode`: octal, quoted or not (`0600`, "640").
- `secret: true`: the file holds a secret. Its default mode becomes 0600 and it
  goes into the node's own part (served only to its node), even when its bytes
  are the same on every node. A mode others cannot read does the same, unless
  the line says `secret: false` (public keys sshd wants 0600).
- Defaults without a manifest line: root:root, directories and symlinks 0755,
  files 0755 if executable in the checkout (git keeps that bit), else 0644.
"""

from __future__ import annotations

import fnmatch
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.errors import Loc, WWError
from toolchain.model.yamlsrc import YMap, YNode, YScalar, kind_of, load_file

MANIFEST = "manifest.yaml"
KNOWN_IDS = {"root": 0, "nobody": 65534, "nogroup": 65534}
KEYS = ("owner", "group", "mode", "secret")


@dataclass(frozen=True)
class Rule:
    pattern: str
    owner: int | None = None
    group: int | None = None
    mode: int | None = None
    secret: bool | None = None
    loc: Loc | None = field(default=None, compare=False)   # the pattern's place, for messages


@dataclass(frozen=True)
class Meta:
    uid: int
    gid: int
    perm: int       # permission bits only
    secret: bool
    public: bool = False   # `secret: false` said so: a mode others cannot read is no secret

    def private(self, kind: int) -> bool:
        """A file kept out of the part every node gets: secret, or one others may not read
        on the node (unless the manifest says `secret: false`)."""
        return kind == stat.S_IFREG and (self.secret or not (self.public or self.perm & stat.S_IROTH))


@dataclass(frozen=True)
class Manifest:
    path: str
    rules: tuple[Rule, ...] = ()

    def meta(self, rel: str, kind: int, executable: bool = False) -> Meta:
        """The metadata of output path `rel` of file type `kind` (stat.S_IFREG, ...)."""
        uid = gid = 0
        mode: int | None = None
        secret = False
        for rule in self.rules:
            if fnmatch.fnmatchcase(rel, rule.pattern):
                uid = rule.owner if rule.owner is not None else uid
                gid = rule.group if rule.group is not None else gid
                mode = rule.mode if rule.mode is not None else mode
                secret = rule.secret if rule.secret is not None else secret
        if mode is None:
            if kind != stat.S_IFREG:
                mode = 0o755
            elif secret:
                mode = 0o700 if executable else 0o600
            else:
                mode = 0o755 if executable else 0o644
        return Meta(uid, gid, mode, secret, public=not secret and any(
            r.secret is False and fnmatch.fnmatchcase(rel, r.pattern) for r in self.rules))

    @property
    def has_private(self) -> bool:
        """Whether some rule may make a file private (Meta.private)."""
        return any(r.secret or (r.mode is not None and not r.mode & stat.S_IROTH and r.secret is None)
                   for r in self.rules)

    def check_matches(self, paths: Iterable[str]) -> None:
        """Raise at the first pattern that matches none of `paths` (an overlay's output paths):
        a misspelt `secret: true` line would otherwise leave the file at 0644, in silence."""
        listed = list(paths)
        for rule in self.rules:
            if not any(fnmatch.fnmatchcase(rel, rule.pattern) for rel in listed):
                near = sorted(listed, key=lambda rel: _distance(rel, rule.pattern))[:3]
                raise _error(f"`{rule.pattern}` matches no file of the overlay", rule.loc or
                             Loc(self.path, 1, 1),
                             "patterns match the output path inside rootfs/ (`.j2` dropped); "
                             f"nearest paths: {', '.join(near) or 'none (the overlay is empty)'}")


def _distance(a: str, b: str) -> int:
    """How many characters two paths differ in (enough to rank a few suggestions)."""
    common = sum(1 for x, y in zip(a, b, strict=False) if x == y)
    return max(len(a), len(b)) - common


def _error(what: str, loc: Loc, hint: str) -> WWError:
    return WWError(what, loc=loc, hint=hint)


def _ident(node: YNode, key: str) -> int:
    assert isinstance(node, YScalar)
    text = node.text.strip()
    if text.isdigit():
        value = int(text)
        if value < 2**32 - 1:
            return value
        raise _error(f"{key} {text} is out of range", node.loc, "use a number from 0 to 4294967294")
    if text in KNOWN_IDS:
        return KNOWN_IDS[text]
    raise _error(f"{key} `{text}` is not a number", node.loc,
                 "the build cannot look names up in the image's /etc/passwd: write the numeric "
                 f"id (only {', '.join(KNOWN_IDS)} are known by name)")


def _mode(node: YNode) -> int:
    assert isinstance(node, YScalar)
    text = node.text.strip().removeprefix("0o")
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise _error(f"mode `{node.text}` is not an octal permission", node.loc,
                     'write it in octal, e.g. mode: "0640"')
    return value


def _rule(pattern: YScalar, body: YNode) -> Rule:
    if not isinstance(body, YMap):
        raise _error(f"settings of `{pattern.text}` must be a mapping", body.loc,
                     'write e.g. `etc/secret: {mode: "0600", secret: true}`')
    values: dict[str, object] = {}
    for key, value in body.items:
        if key.text not in KEYS:
            raise _error(f"unknown setting `{key.text}` for `{pattern.text}`", key.loc,
                         "known settings: " + ", ".join(KEYS))
        if not isinstance(value, YScalar) or kind_of(value) == "null":
            raise _error(f"`{key.text}` of `{pattern.text}` needs a value", value.loc,
                         "write a single value after the colon")
        if key.text in ("owner", "group"):
            values[key.text] = _ident(value, key.text)
        elif key.text == "mode":
            values["mode"] = _mode(value)
        else:
            if kind_of(value) != "bool":
                raise _error(f"secret must be true or false, not `{value.text}`", value.loc,
                             "write secret: true")
            values["secret"] = value.text.lower() in ("true", "yes", "on")
    return Rule(pattern.text.strip("/"), **values, loc=pattern.loc)  # type: ignore[arg-type]


def load_manifest(overlay_dir: Path) -> Manifest:
    """The manifest of the overlay in `overlay_dir` (the directory holding rootfs/)."""
    path = overlay_dir / MANIFEST
    if not path.exists():
        return Manifest(str(path))
    root = load_file(path)
    if not isinstance(root, YMap):
        raise _error(f"{MANIFEST} must map paths to settings", root.loc,
                     'write e.g. `etc/secret: {mode: "0600", secret: true}`')
    rules = []
    for key, value in root.items:
        if not key.text.strip("/"):
            raise _error("an empty path in the manifest", key.loc, "write a path inside rootfs/")
        rules.append(_rule(key, value))
    return Manifest(str(path), tuple(rules))
