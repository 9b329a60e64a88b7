"""The task module and doit's store: nothing at import, the lock taken when doit opens the store."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from tests.support.project import make_project, run_doit
from toolchain.build import store, tasks

TASK_NAMES = [name.removeprefix("task_") for name in tasks.__all__ if name.startswith("task_")]


def test_doit_finds_the_store_by_the_name_doit_config_gives() -> None:
    found = {e.name: e for e in importlib.metadata.entry_points(group="doit.BACKEND")}
    assert tasks.DOIT_CONFIG["backend"] in found, "reinstall wwstatic (pip install -e .) for its entry point"
    assert found[str(tasks.DOIT_CONFIG["backend"])].load() is store.Store


def test_importing_the_tasks_writes_nothing_and_takes_no_lock(tmp_path: Path) -> None:
    probe = ("import os; from toolchain.build import lock, tasks; "
             "print(len(lock._held), sorted(os.listdir('.')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1) == ["0", "[]\n"]
    assert not any(tmp_path.iterdir())


def test_doit_list_works_on_a_broken_template(tmp_path: Path) -> None:
    project = make_project(tmp_path / "site")
    template = next((project / "overlays").rglob("*.j2"))
    template.write_text("{% if %}unclosed {{ node.name\n")
    listed = run_doit(project, "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == sorted(TASK_NAMES)
    built = run_doit(project)
    assert built.returncode != 0 and f"{template}:1" in built.stderr, built.stderr


def test_the_store_takes_the_lock_and_help_does_not(tmp_path: Path) -> None:
    project = make_project(tmp_path / "site")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from toolchain.build import lock; "
        "lock.acquire(Path(sys.argv[1], 'output')); print('held', flush=True); time.sleep(30)"),
        str(project)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {**os.environ, store.LOCK_WAIT: "0"}
        helped = subprocess.run([sys.executable, "-m", "doit", "help"], cwd=project, env=env,
                                capture_output=True, text=True, check=False)
        assert helped.returncode == 0, helped.stderr
        # `doit list` runs the task creators, which write output/.state: it waits like a build.
        listed = subprocess.run([sys.executable, "-m", "doit", "list"], cwd=project, env=env,
                                capture_output=True, text=True, check=False)
        assert listed.returncode != 0
        assert f"another build (PID {holder.pid}) is running" in listed.stderr, listed.stderr
        assert not (project / "output" / ".state").exists()
    finally:
        holder.kill()
        holder.wait()
