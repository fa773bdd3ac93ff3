"""Rules of the test tree itself that nothing else would report clearly."""

from __future__ import annotations

from scripts.paths import ROOT


def test_the_cluster_modules_run_the_lifecycle_first_and_the_uninstall_last():
    """pytest runs tests/cluster in name order: test_cluster_lifecycle.py needs the machine before the shared cluster
    exists, test_upgrade_and_uninstall.py uninstalls the release (tests/cluster/conftest.py). A module named to sort
    before the first tears the shared cluster down under every later test."""
    names = sorted(path.name for path in (ROOT / "tests" / "cluster").glob("test_*.py"))
    assert names[0] == "test_cluster_lifecycle.py", names
    assert names[-1] == "test_upgrade_and_uninstall.py", names
