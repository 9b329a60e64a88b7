"""Add a small Python 3 to the demo image's root, for boot tests of wwclient.

The demo image is busybox alone; wwclient needs python3. The interpreter, the
C library and the pure-Python modules wwclient imports come from Debian's
packages (fetched into the demo's .deb cache, unpacked with dpkg-deb), about
12 MB unpacked instead of the 40 MB of the packages.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from toolchain.image.demo import fetch_deb

DEBS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
        "libc6", "zlib1g", "libexpat1")
# What `python3 -I -X importtime wwclient.py --once` imports (a full apply), by top-level name.
STDLIB = ("__future__", "_collections_abc", "_compression", "_sitebuiltins", "_weakrefset", "abc",
          "argparse", "ast", "base64", "bisect", "bz2", "calendar", "codecs", "collections",
          "contextlib", "copy", "copyreg", "dataclasses", "datetime", "dis", "email", "encodings",
          "enum", "fnmatch", "functools", "genericpath", "gettext", "gzip", "hashlib", "http", "importlib",
          "inspect", "io", "ipaddress", "json", "keyword", "linecache", "locale", "lzma", "opcode",
          "operator", "os", "posixpath", "quopri", "random", "re", "reprlib", "selectors", "shlex",
          "shutil", "signal", "site", "socket", "ssl", "stat", "string", "stringprep", "struct", "subprocess",
          "sysconfig", "_sysconfigdata__linux_x86_64-linux-gnu", "_sysconfigdata__x86_64-linux-gnu",
          "threading", "token", "tokenize", "types", "typing", "urllib", "warnings", "weakref")
LIBS = ("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libz.so.1*", "libexpat.so.1*")


def add_python(root: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        x = Path(tmp)
        for pkg in DEBS:
            subprocess.run(["dpkg-deb", "-x", str(fetch_deb(pkg)), str(x)], check=True)
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(x / "usr/bin/python3.11", root / "usr/bin/python3.11")
        (root / "usr/bin/python3").unlink(missing_ok=True)
        (root / "usr/bin/python3").symlink_to("python3.11")
        libdir = root / "lib/x86_64-linux-gnu"
        libdir.mkdir(parents=True, exist_ok=True)
        for pattern in LIBS:
            for src in [*(x / "lib/x86_64-linux-gnu").glob(pattern),
                        *(x / "usr/lib/x86_64-linux-gnu").glob(pattern)]:
                shutil.copy2(src, libdir / src.name, follow_symlinks=False)
        (root / "lib64").mkdir(exist_ok=True)
        (root / "lib64/ld-linux-x86-64.so.2").unlink(missing_ok=True)
        (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        src_lib, dst_lib = x / "usr/lib/python3.11", root / "usr/lib/python3.11"
        dst_lib.mkdir(parents=True, exist_ok=True)
        for name in STDLIB:
            if (src_lib / name).is_dir():
                shutil.copytree(src_lib / name, dst_lib / name, dirs_exist_ok=True)
            elif (src_lib / f"{name}.py").exists():
                shutil.copy2(src_lib / f"{name}.py", dst_lib / f"{name}.py")
        (dst_lib / "lib-dynload").mkdir(exist_ok=True)
        for ext in (src_lib / "lib-dynload").glob("_json.*.so"):
            shutil.copy2(ext, dst_lib / "lib-dynload" / ext.name)
