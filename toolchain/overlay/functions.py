"""What overlay templates can use beyond plain Jinja2: Warewulf's template power.

Variables (see `make_context`): `node` (the resolved node), `nodes` (every node),
`head`, `image` (the node's image), `cluster` (the whole resolved cluster:
nfs_exports, ssh_key_types, dhcp, ...), `cluster_file`.

Functions:
- `include_head(path)`: text of a file on the build host; a relative path is
  relative to the project. Missing file: an error (Warewulf silently gives "").
- `include_image(path)`: text of a file inside the node's image.
- `symlink(target)`: the current output becomes a symlink to `target`.
- `skip()`: the current output is not written (inside `{% file %}`: that file;
  elsewhere: everything the template writes).
- `fail(message)`: stop the build with this message.
- `ssh_host_key(type)`, `ssh_host_pubkey(type)`: this node's own host key,
  generated once on the head (hostkeys.py).

One template, several files: `{% file "ifcfg-" ~ dev.name %}...{% endfile %}`
writes a file per block, named relative to the template's directory (or from
the overlay root when the name starts with `/`). A template that uses blocks
writes only its blocks; text outside them must be blank.

Filters: the emitters of toolchain/emit.py (`sh`, alias `shquote`, ...),
`systemd_escape` / `systemd_escape_path` (exactly as
`systemd-escape [--path]`), `unique_by("attr.path")` (items with a unique
field, first wins: Warewulf's UniqueField for objects), `unique_field(sep, index)`
(lines of text unique by a field, first wins: Warewulf's UniqueField).
"""

from __future__ import annotations

import posixpath
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from toolchain import emit
from toolchain.errors import WWError
from toolchain.image.files import read_image_file
from toolchain.model.spec import secret_paths
from toolchain.overlay import hostkeys

if TYPE_CHECKING:
    from toolchain.model.types import Cluster, Node

STATE = "__wwstatic_render_state"


@dataclass
class Output:
    rel: str                 # path inside the overlay's rootfs
    data: str = ""
    target: str | None = None  # set by symlink()
    skipped: bool = False


@dataclass
class RenderState:
    """What one template rendering produced, and what it read from the head."""

    project: Path
    main: Output
    blocks: list[Output] = field(default_factory=list)
    stack: list[Output] = field(default_factory=list)
    head_files: list[Path] = field(default_factory=list)

    @property
    def current(self) -> Output:
        return self.stack[-1] if self.stack else self.main

    def outputs(self) -> list[Output]:
        """The files this rendering writes, in the order they were made."""
        if self.main.skipped:
            return []
        if not self.blocks:
            return [self.main]
        if self.main.data.strip() or self.main.target is not None:
            raise WWError("text or symlink() outside {% file %} blocks would be lost",
                          hint="a template with {% file %} blocks writes only its blocks: move the "
                               "text into a block or remove it")
        return [b for b in self.blocks if not b.skipped]


def _state(context: jinja2.runtime.Context) -> RenderState:
    state = context.get(STATE)
    if not isinstance(state, RenderState):
        raise WWError("this function works only while an overlay is rendered")
    return state


class FileExtension(Extension):
    """`{% file NAME %}...{% endfile %}`: one template writing several files."""

    tags = {"file"}  # noqa: RUF012 (Extension declares it as a class attribute)

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        name = parser.parse_expression()
        body = parser.parse_statements(("name:endfile",), drop_needle=True)
        call = self.call_method("_file", [nodes.ContextReference(), name])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _file(self, context: jinja2.runtime.Context, name: Any, caller: Any) -> str:
        state = _state(context)
        if state.stack:
            raise WWError("{% file %} blocks cannot be nested", hint="close the first with {% endfile %}")
        rel = _join(state.main.rel, str(name))
        if any(b.rel == rel for b in state.blocks):
            raise WWError(f"{{% file %}} writes {rel} twice", hint="give every block its own name")
        out = Output(rel)
        state.stack.append(out)
        try:
            out.data = caller()
        finally:
            state.stack.pop()
        state.blocks.append(out)
        return ""


def _join(template_rel: str, name: str) -> str:
    """The output path of a `file` block: from the overlay root, or beside the template."""
    if not name.strip():
        raise WWError("{% file %} needs a non-empty name")
    joined = name.lstrip("/") if name.startswith("/") else posixpath.join(
        posixpath.dirname(template_rel), name)
    norm = posixpath.normpath(joined)
    if norm in (".", "") or norm.startswith("../") or norm == "..":
        raise WWError(f"{{% file %}} name `{name}` leaves the overlay",
                      hint="write a path inside the overlay's rootfs")
    return norm


# --- functions ----------------------------------------------------------------

def _text(data: bytes, what: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WWError(f"{what} is not UTF-8 text", hint="only text files can be included") from None


@jinja2.pass_context
def include_head(context: jinja2.runtime.Context, path: str) -> str:
    state = _state(context)
    full = state.project / path
    try:
        data = full.read_bytes()
    except FileNotFoundError:
        raise WWError(f"include_head: {full} does not exist on the build host",
                      hint="create it, or stop including it") from None
    except OSError as exc:
        raise WWError(f"include_head: cannot read {full}: {exc.strerror}") from None
    state.head_files.append(full)
    return _text(data, str(full))


@jinja2.pass_context
def include_image(context: jinja2.runtime.Context, path: str) -> str:
    state = _state(context)
    img = context["image"]
    return _text(read_image_file(state.project, img, path), f"/{path.lstrip('/')} of image {img.name}")


@jinja2.pass_context
def symlink(context: jinja2.runtime.Context, target: str) -> str:
    if not str(target):
        raise WWError("symlink() needs a target")
    _state(context).current.target = str(target)
    return ""


@jinja2.pass_context
def skip(context: jinja2.runtime.Context) -> str:
    _state(context).current.skipped = True
    return ""


def fail(message: str) -> str:
    raise WWError(f"the template stopped the build: {message}")


@jinja2.pass_context
def ssh_host_key(context: jinja2.runtime.Context, kind: str) -> str:
    return hostkeys.ensure_key(_state(context).project, context["node"].name, kind).read_text()


@jinja2.pass_context
def ssh_host_pubkey(context: jinja2.runtime.Context, kind: str) -> str:
    path = hostkeys.ensure_key(_state(context).project, context["node"].name, kind)
    return path.with_suffix(".pub").read_text()


# --- filters ------------------------------------------------------------------

_SYSTEMD_VALID = set(string.ascii_letters + string.digits + ":_.")


def systemd_escape(value: Any, path: bool = False) -> str:
    """`systemd-escape [--path] VALUE`: a string made safe for a unit name."""
    text = str(value)
    if path:
        parts = [p for p in text.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise WWError(f"systemd_escape_path: `{text}` is not a normalized path",
                          hint="remove `..` from the path")
        text = "/".join(parts)
        if not text:
            return "-"
    out = []
    for i, byte in enumerate(text.encode()):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif (i == 0 and char == ".") or char not in _SYSTEMD_VALID:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(char)
    return "".join(out)


def systemd_escape_path(value: Any) -> str:
    return systemd_escape(value, path=True)


@jinja2.pass_environment
def unique_by(env: jinja2.Environment, items: Iterable[Any], attribute: str) -> list[Any]:
    """The items whose `attribute` (dotted, e.g. "primary.ip") was not seen before."""
    seen: set[Any] = set()
    out = []
    for item in items:
        key = item
        for part in attribute.split("."):
            key = env.getitem(key, part)
        if isinstance(key, jinja2.Undefined):
            raise WWError(f"unique_by: an item has no `{attribute}`", hint="check the field name")
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def unique_field(text: str, sep: str = ":", index: int = 0) -> str:
    """Lines of `text` whose field `index` (split by `sep`) was not seen before; no blank lines."""
    seen: set[str] = set()
    out = []
    for line in str(text).splitlines():
        fields = line.split(sep)
        key = fields[index] if len(fields) > index else line
        if not line.strip() or key in seen:
            continue
        seen.add(key)
        out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def install(env: jinja2.Environment, project: Path) -> None:
    """Add wwstatic's functions, filters and `{% file %}` to `env`."""
    env.add_extension(FileExtension)
    env.add_extension("jinja2.ext.do")  # {% do list.append(x) %}: collecting values in templates
    env.add_extension("jinja2.ext.loopcontrols")
    env.extend(wwstatic_project=project)
    env.globals.update(include_head=include_head, include_image=include_image, symlink=symlink,
                       skip=skip, fail=fail, ssh_host_key=ssh_host_key, ssh_host_pubkey=ssh_host_pubkey)
    env.filters.update(emit.FILTERS)
    env.filters.update(systemd_escape=systemd_escape,
                       systemd_escape_path=systemd_escape_path, unique_by=unique_by,
                       unique_field=unique_field)


def make_context(cluster: Cluster, node: Node) -> dict[str, Any]:
    """The variables every overlay template of `node` sees."""
    return {
        "node": node,
        "nodes": cluster.nodes,
        "head": cluster.head,
        "image": cluster.images[node.image],
        "cluster": cluster,
        "cluster_file": Path(cluster.path).name,
    }


# --- what a template reads ------------------------------------------------------

# Context entries and functions whose value differs from node to node.
PER_NODE = frozenset({"node", "image", "include_image", "ssh_host_key", "ssh_host_pubkey"})
SHARED = frozenset({"nodes", "head", "cluster", "cluster_file"})


def _parse(env: jinja2.Environment, name: str) -> nodes.Template:
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return env.parse(source)


def node_dependent(env: jinja2.Environment, template_name: str) -> bool:
    """Whether the output of `template_name` may differ between nodes (conservative)."""
    return _node_dependent(env, template_name, set())


def _used(env: jinja2.Environment, ast: nodes.Template) -> set[str]:
    """Context variables and functions a template reads (meta leaves out the globals)."""
    called = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load" and n.name in env.globals}
    return jinja2.meta.find_undeclared_variables(ast) | called


def _node_dependent(env: jinja2.Environment, name: str, seen: set[str]) -> bool:
    if name in seen:
        return False
    seen.add(name)
    ast = _parse(env, name)
    used = _used(env, ast)
    # Anything neither known to be shared nor a shared function may come from
    # the including template's per-node locals: count it as per node.
    if used & PER_NODE or used - SHARED - set(env.globals):
        return True
    for ref in jinja2.meta.find_referenced_templates(ast):
        if ref is None or _node_dependent(env, ref, seen):
            return True
    return False


# Functions whose value is a secret of the node (its private host key).
SECRET_FUNCTIONS = frozenset({"ssh_host_key"})


def reads_secret(env: jinja2.Environment, template_name: str) -> bool:
    """Whether a template (or one it includes) may write a secret field (spec: secret=True)
    or a secret function's value, conservatively: any attribute or constant naming a
    secret field's last part counts, whatever it is read of (`n.ipmi.password` in a loop
    over `nodes`, `map(attribute="ipmi.password")`)."""
    return _reads_secret(env, template_name, set())


def _reads_secret(env: jinja2.Environment, name: str, seen: set[str]) -> bool:
    if name in seen:
        return False
    seen.add(name)
    ast = _parse(env, name)
    leaves = {path.rsplit(".", 1)[-1] for path in secret_paths()}
    if _used(env, ast) & SECRET_FUNCTIONS:
        return True
    for node in ast.find_all((nodes.Getattr, nodes.Const)):
        text = node.attr if isinstance(node, nodes.Getattr) else getattr(node, "value", None)
        if isinstance(text, str) and text.rsplit(".", 1)[-1] in leaves:
            return True
    return any(ref is None or _reads_secret(env, ref, seen)
               for ref in jinja2.meta.find_referenced_templates(ast))


def _chain(node: nodes.Node) -> list[str] | None:
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            parts.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None


_METHODS = {"values", "items", "keys", "get"}


def fields_used(env: jinja2.Environment, template_name: str) -> tuple[set[str], set[str]]:
    """The variables a template reads, and the dotted fields it reads of them."""
    ast = _parse(env, template_name)
    used = _used(env, ast)
    chains: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        chain = _chain(node)
        if chain and chain[0] in used and len(chain) > 1:
            while len(chain) > 1 and chain[-1] in _METHODS:
                chain.pop()
            chains.add(".".join(chain))
    # Keep the longest chains only: node.ipmi.ip says node.ipmi is read.
    longest = {c for c in chains if not any(o.startswith(c + ".") for o in chains)}
    return used, longest



# Context variables that are a part of the cluster, by the Cluster field they come
# from ("cluster_file" is the name of `path`); `node` is keyed per node.
CLUSTER_VARS = {"head": "head", "nodes": "nodes", "image": "images", "cluster_file": "cluster_file"}


def cluster_fields(env: jinja2.Environment, template_name: str) -> frozenset[str] | None:
    """The cluster fields a template reads: `cluster.X` gives X, and the variables
    in CLUSTER_VARS theirs; None when it cannot tell (`cluster` used whole, or an
    include whose name is computed), which means all of them."""
    return _cluster_fields(env, template_name, set())


def _cluster_fields(env: jinja2.Environment, name: str, seen: set[str]) -> frozenset[str] | None:
    if name in seen:
        return frozenset()
    seen.add(name)
    ast = _parse(env, name)
    used = _used(env, ast)
    found = {CLUSTER_VARS[v] for v in used if v in CLUSTER_VARS}
    if "cluster" in used:
        reached: set[int] = set()
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            base = getattr(node, "node", None)
            if isinstance(base, nodes.Name) and base.name == "cluster":
                if isinstance(node, nodes.Getattr):
                    found.add(node.attr)
                elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                    found.add(str(node.arg.value))
                else:
                    return None
                reached.add(id(base))
        if any(n.name == "cluster" and id(n) not in reached for n in ast.find_all(nodes.Name)):
            return None   # passed on or bound to a name: any field may be read
    for ref in jinja2.meta.find_referenced_templates(ast):
        more = None if ref is None else _cluster_fields(env, ref, seen)
        if more is None:
            return None
        found |= more
    return frozenset(found)
