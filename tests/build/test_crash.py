"""The crash test, short: builds SIGKILLed at random points while a client reads every node's files.

tests/lab/crashlab.py says what is done and checked; bench/crash.py runs the full
version (50+ runs) and prints its figures.
"""

from __future__ import annotations

from pathlib import Path

from tests.lab.crashlab import crash_test, summary


def test_killed_builds_never_serve_a_half_updated_tree(tmp_path: Path) -> None:
    # The image changes in one run of eight (a longer build: its root, archive, kernel).
    report = crash_test(tmp_path, runs=8, seed=7, grace=30.0, image_every=0.15)
    text = summary(report, 7)
    assert report.problems == [], text
    assert report.failures == [], text
    assert len(report.runs) == 8
    assert report.killed >= 4, text           # most runs are killed, some finish
    assert report.fetches > 500, text         # the client kept reading throughout
    assert report.compared > 20, text         # the final tree was compared with a clean build
