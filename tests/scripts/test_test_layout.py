"""Rules of the test tree itself that nothing else would report clearly."""

from __future__ import annotations

import subprocess
import sys

from scripts.paths import ROOT


def test_the_cluster_modules_run_the_lifecycle_first_and_the_release_changing_ones_last() -> None:
    """tests/cluster/conftest.py orders the folder (pytest_collection_modifyitems): test_cluster_lifecycle.py needs
    the machine before the shared cluster exists, test_production_surface.py, test_sign_in_with_oidc.py,
    test_metrics.py and test_dags_by_git_bundle.py upgrade the release into another shape and back (pods roll), and
    test_upgrade_and_uninstall.py uninstalls it.
    Checked on pytest's own collection, whatever the names."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/cluster"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: list[str] = []
    for line in done.stdout.splitlines():
        if "::" in line and (module := line.split("::")[0].rsplit("/", 1)[-1]) not in modules:
            modules.append(module)
    on_disk = {path.name for path in (ROOT / "tests" / "cluster").glob("test_*.py")}
    assert set(modules) == on_disk, done.stdout[-2000:]
    assert modules[0] == "test_cluster_lifecycle.py", modules
    last = [
        "test_production_surface.py",
        "test_fast_lane.py",
        "test_sign_in_with_oidc.py",
        "test_metrics.py",
        "test_dags_by_git_bundle.py",
        "test_upgrade_and_uninstall.py",
    ]
    assert modules[-len(last) :] == last, modules


def test_no_two_test_modules_share_a_file_name() -> None:
    """The test folders are not packages: pytest imports each module by its file name, and a second module of the
    same name anywhere under tests/ stops the whole session at collection."""
    names = sorted(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert len(names) == len(set(names)), [name for name in set(names) if names.count(name) > 1]
