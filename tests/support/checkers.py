"""Real checkers of generated files, and small readers for the syntaxes that have none here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from toolchain.build.plan import Blob, Group, NodePlan, OverlaySet
from toolchain.model.types import Cluster
from toolchain.overlay.render import SourceFile
from toolchain.overlay.split import Part, Source

NGINX_MAIN = """\
daemon off;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {w}/b; proxy_temp_path {w}/p; fastcgi_temp_path {w}/f;
    uwsgi_temp_path {w}/u; scgi_temp_path {w}/s;
    include {server};
}}
"""


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def nginx_check(workdir: Path, server_conf: Path, head_ip: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the include wrapped in a minimal nginx.conf, in a private network
    namespace that has the head's address (nginx -t binds the listen address)."""
    main = workdir / "nginx-main.conf"
    main.write_text(NGINX_MAIN.format(w=workdir, server=server_conf))
    script = (f"ip link set lo up && ip addr add {head_ip}/32 dev lo && "
              f"nginx -t -e {workdir}/err.log -c {main}")
    return run(["unshare", "--net", "sh", "-c", script])


def dhcpd_check(conf: Path) -> subprocess.CompletedProcess[str]:
    leases = conf.parent / "dhcpd.leases"
    leases.touch()
    return run(["dhcpd", "-4", "-t", "-cf", str(conf), "-lf", str(leases)])


def dnsmasq_check(conf: Path) -> subprocess.CompletedProcess[str]:
    return run(["dnsmasq", "--test", f"--conf-file={conf}"])


def kea_check(conf: Path, iface: str | None) -> subprocess.CompletedProcess[str]:
    make = f"ip link add {iface} type bridge && " if iface else ""
    return run(["unshare", "--net", "sh", "-c", f"{make}exec kea-dhcp4 -t {conf}"])


def dash_check(script: Path) -> subprocess.CompletedProcess[str]:
    return run(["dash", "-n", str(script)])


def sourced_values(script: Path, names: list[str]) -> dict[str, str]:
    """The variables a sourced sh file sets, as dash reads them."""
    dump = "; ".join(f'printf "%s\\0" "${{{n}}}"' for n in names)
    done = subprocess.run(["dash", "-c", f". {script}; {dump}"], capture_output=True, check=True)
    return dict(zip(names, done.stdout.decode("utf-8", "surrogateescape").split("\0"), strict=False))


_NGINX_TOKEN = re.compile(r'\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|([{};])|([^\s{};"#]+)', re.S)


def nginx_tokens(text: str) -> list[str | tuple[str]]:
    """nginx's tokens: a quoted or bare word as str, `{` `}` `;` as 1-tuples."""
    out: list[str | tuple[str]] = []
    pos = 0
    while pos < len(text):
        m = _NGINX_TOKEN.match(text, pos)
        assert m, f"nginx: cannot read {text[pos:pos + 40]!r}"
        pos = m.end()
        if m.group(1) is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        elif m.group(2):
            out.append((m.group(2),))
        elif m.group(3):
            out.append(m.group(3))
    return out


def nginx_directives(text: str) -> list[tuple[int, list[str]]]:
    """Every directive as (nesting depth, words), in order."""
    out: list[tuple[int, list[str]]] = []
    depth, words = 0, []
    for tok in nginx_tokens(text):
        if isinstance(tok, str):
            words.append(tok)
            continue
        if tok[0] in ("{", ";"):
            out.append((depth, words))
            depth += tok[0] == "{"
        else:
            assert not words and depth > 0, "unbalanced }"
            depth -= 1
        words = []
    assert depth == 0 and not words, "unclosed block"
    return out


def unit_file(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit-style file (.network, .link) read as systemd's parser does:
    comments, [Section], Key=Value; fails on what systemd would read differently
    (a line continued with \\, text outside a section, a line without `=`)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        assert not stripped.endswith("\\"), f"continued line: {line!r}"
        if stripped.startswith("["):
            assert stripped.endswith("]"), line
            current = sections.setdefault(stripped[1:-1], [])
            continue
        assert current is not None and "=" in stripped, f"not Key=Value: {line!r}"
        key, _, value = stripped.partition("=")
        current.append((key.strip(), value.strip()))
    return sections



def fixed_plan(cluster: Cluster, name: str) -> NodePlan:
    """A node's plan with fixed blob names, both kinds with a shared and an own part."""
    def blob(url: str) -> Blob:
        return Blob(url, "0" * 64)
    node = cluster.node(name)
    own_file = Source(0, "x", SourceFile("etc/x.j2", Path("etc/x.j2"), "template"), True, False)
    sets = {kind: OverlaySet(kind, names, (), (own_file,), Part((), {}),
                             blob(f"shared/{kind}-{'5' * 20}.img.gz"), "", False, False)
            for kind, names in (("system", node.system_overlays), ("runtime", node.runtime_overlays))}
    group = Group("9" * 20, node.image, blob(f"images/demo/vmlinuz-{'1' * 20}"),
                  blob(f"images/demo/image-{'1' * 20}.img.gz"), sets)
    own = {kind: blob(f"nodes/{name}/{kind}-{kind[0] * 20}.img.gz") for kind in ("system", "runtime")}
    return NodePlan(node, group, own)
