"""Per-node SSH host keys: generated once on the head, kept in the project.

Warewulf ships one host key set to every node (`/etc/warewulf/keys`), so one
node's root can impersonate every other. Here each node gets its own set,
made with ssh-keygen the first time an overlay asks for it and kept under
`state/ssh/<node>/` in the project: not in output/ (which is generated and may
be wiped) and stable across builds, so known_hosts stays valid. Back state/ up;
it is private (directories 0700, keys 0600).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from toolchain.errors import WWError
from toolchain.fsutil import temp_dir
from toolchain.model.spec import SSH_KEY_TYPES
from toolchain.proc import run

STATE = "state"


def key_dir(project: Path, node: str) -> Path:
    return project / STATE / "ssh" / node


def key_path(project: Path, node: str, kind: str) -> Path:
    return key_dir(project, node) / f"ssh_host_{kind}_key"


def ensure_key(project: Path, node: str, kind: str) -> Path:
    """The private key file of type `kind` for `node`, generated if it does not exist yet."""
    if kind not in SSH_KEY_TYPES:
        raise WWError(f"SSH host key type `{kind}` is not supported",
                      hint=f"use one of {', '.join(SSH_KEY_TYPES)} (ssh.key_types in cluster.yaml)")
    path = key_path(project, node, kind)
    if path.exists() and path.with_suffix(".pub").exists():
        return path
    if shutil.which("ssh-keygen") is None:
        raise WWError("ssh-keygen is not installed on the build host",
                      hint="apt-get install openssh-client (toolchain/bootstrap.sh does)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    # Generate beside the target and rename: two builds at once never see half a key.
    with temp_dir(path.parent, "keygen") as tmp:
        new = Path(tmp) / path.name
        run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{node}", "-f", str(new)],
            hint="install openssh-client")
        os.chmod(new, 0o600)
        os.replace(new.with_suffix(".pub"), path.with_suffix(".pub"))
        os.replace(new, path)
    return path
