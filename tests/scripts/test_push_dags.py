"""scripts/push-dags against real Git repositories: local bare repos (file://) and a git daemon (git://)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.paths import ROOT

PUSH = ROOT / "scripts" / "push-dags"


def push(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([PUSH, *map(str, args)], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def git(*args: str | Path) -> str:
    return subprocess.run(["git", *map(str, args)], capture_output=True, text=True, check=True).stdout.strip()


def tree(repo: Path, branch: str = "main") -> list[str]:
    return git("--git-dir", repo, "ls-tree", "-r", "--name-only", branch).split()


def commit_count(repo: Path, branch: str = "main") -> int:
    return int(git("--git-dir", repo, "rev-list", "--count", branch))


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    repo = tmp_path / "dags.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", repo)
    return repo


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "my-dags"
    (folder / "common").mkdir(parents=True)
    (folder / "pipeline.py").write_text("# a DAG\n")
    (folder / "common" / "helpers.py").write_text("X = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "pipeline.cpython-312.pyc").write_bytes(b"\0")
    return folder


def test_first_push_creates_main_with_the_folder_as_dags(bare: Path, source: Path) -> None:
    done = push("--source", source, f"file://{bare}")
    assert done.returncode == 0, done.stderr
    assert tree(bare) == ["dags/common/helpers.py", "dags/pipeline.py"]
    assert git("--git-dir", bare, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert "remote has no branch 'main' yet" in done.stdout


def test_pushing_the_same_files_again_makes_no_commit(bare: Path, source: Path) -> None:
    assert push("--source", source, f"file://{bare}").returncode == 0
    again = push("--source", source, f"file://{bare}")
    assert again.returncode == 0, again.stderr
    assert "nothing to push" in again.stdout
    assert commit_count(bare) == 1


def test_a_changed_dag_arrives_and_a_deleted_one_goes(bare: Path, source: Path) -> None:
    assert push("--source", source, f"file://{bare}").returncode == 0
    (source / "pipeline.py").write_text("# a DAG, version 2\n")
    (source / "common" / "helpers.py").unlink()
    (source / "new_dag.py").write_text("# another DAG\n")
    done = push("--source", source, f"file://{bare}")
    assert done.returncode == 0, done.stderr
    assert commit_count(bare) == 2
    assert tree(bare) == ["dags/new_dag.py", "dags/pipeline.py"]
    assert git("--git-dir", bare, "show", "main:dags/pipeline.py") == "# a DAG, version 2"


def test_files_outside_dags_in_the_remote_are_kept(bare: Path, source: Path, tmp_path: Path) -> None:
    work = tmp_path / "user-clone"
    git("init", "--quiet", "--initial-branch=main", work)
    (work / "README.md").write_text("my DAG repository\n")
    git("-C", work, "add", "README.md")
    git("-C", work, "-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "--quiet", "-m", "init")
    git("-C", work, "push", "--quiet", bare, "main")
    done = push("--source", source, f"file://{bare}")
    assert done.returncode == 0, done.stderr
    assert tree(bare) == ["README.md", "dags/common/helpers.py", "dags/pipeline.py"]
    assert commit_count(bare) == 2


def test_branch_and_subdir_options(bare: Path, source: Path) -> None:
    done = push("--source", source, "--branch", "dev", "--subdir", "airflow/dags", f"file://{bare}")
    assert done.returncode == 0, done.stderr
    assert tree(bare, "dev") == ["airflow/dags/common/helpers.py", "airflow/dags/pipeline.py"]


def test_default_source_is_the_projects_dags_folder(bare: Path, tmp_path: Path) -> None:
    if not any((ROOT / "dags").glob("*.py")):
        pytest.skip("dags/ has no DAG files yet")
    done = push(f"file://{bare}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = sorted(
        f"dags/{p.relative_to(ROOT / 'dags')}"
        for p in (ROOT / "dags").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert tree(bare) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no REMOTE given"),
        (["--source", "/nonexistent/dags", "file:///tmp/x.git"], "source folder '/nonexistent/dags' does not exist"),
        (["--bogus", "file:///tmp/x.git"], "unknown option '--bogus'"),
        (["--source"], "--source needs a value"),
        (["a.git", "b.git"], "one REMOTE only"),
        (["--subdir", "../up", "file:///tmp/x.git"], "--subdir must be a relative path"),
    ],
)
def test_bad_arguments_give_a_clear_error(args: list[str], message: str) -> None:
    done = push(*args)
    assert done.returncode != 0
    assert message in done.stderr


def test_unreachable_remote_names_the_remote(tmp_path: Path, source: Path) -> None:
    done = push("--source", source, f"file://{tmp_path}/missing.git")
    assert done.returncode != 0
    assert f"cannot read remote 'file://{tmp_path}/missing.git'" in done.stderr


def test_empty_source_folder_is_refused(tmp_path: Path, bare: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = push("--source", tmp_path / "empty", f"file://{bare}")
    assert done.returncode != 0
    assert "has no files" in done.stderr


# --- the in-cluster Git server's own command, run locally -----------------------------------------------------------


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[str]:
    """config/kind/dags-git.yaml's init script and git daemon command with /srv/git moved to a temp dir."""
    pod = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "config/kind/dags-git.yaml").read_text())
        if doc["kind"] == "Deployment"
    )["spec"]["template"]["spec"]
    base = tmp_path / "srv-git"
    base.mkdir()
    init = pod["initContainers"][0]["command"]
    subprocess.run([*init[:2], init[2].replace("/srv/git", str(base))], check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [w.replace("/srv/git", str(base)) for w in pod["containers"][0]["command"]]
    command = [f"--port={port}" if w.startswith("--port=") else w for w in command]
    command = ["--listen=127.0.0.1" if w.startswith("--listen=") else w for w in command]
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            assert daemon.poll() is None, f"{shlex.join(command)} exited"
            assert time.monotonic() < deadline, "git daemon did not listen within 10 s"
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/dags.git"
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=10)


def test_the_dev_server_keeps_a_push_as_the_pack_it_came_in(git_daemon: str, source: Path, tmp_path: Path) -> None:
    """No loose objects after a push (the init script's receive.unpackLimit): a clone sends the stored pack instead
    of compressing every file again (docs/benchmarks/cluster.md, what a clone costs each worker pod)."""
    done = push("--source", source, git_daemon)
    assert done.returncode == 0, done.stderr
    objects = tmp_path / "srv-git" / "dags.git" / "objects"
    assert not list(objects.glob("[0-9a-f][0-9a-f]/*"))
    assert list((objects / "pack").glob("*.pack"))


def test_the_dev_server_serves_a_partial_clone(git_daemon: str, source: Path, tmp_path: Path) -> None:
    """What git-sync fetches with dags.gitSync.sparseCheckout (the kind profile): commits and trees, no file contents
    (the init script's uploadpack.allowFilter; without it the server sends everything and says so)."""
    done = push("--source", source, git_daemon)
    assert done.returncode == 0, done.stderr
    clone = tmp_path / "partial"
    fetched = subprocess.run(
        ["git", "clone", "--filter=blob:none", "--no-checkout", "--depth", "1", git_daemon, str(clone)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "filtering not recognized" not in fetched.stderr, fetched.stderr
    missing = [line for line in git("-C", clone, "rev-list", "--objects", "--missing=print", "HEAD").splitlines()
               if line.startswith("?")]  # fmt: skip
    files = git("-C", clone, "ls-tree", "-r", "--name-only", "HEAD").split()  # the trees came
    assert files
    assert len(missing) == len(files), (files, missing)


def test_push_over_the_git_protocol_to_the_dev_server_command_and_clone_back(
    git_daemon: str, source: Path, tmp_path: Path
) -> None:
    done = push("--source", source, git_daemon)
    assert done.returncode == 0, done.stderr
    clone = tmp_path / "clone"
    git("clone", "--quiet", "--depth", "1", "--branch", "main", git_daemon, clone)  # what git-sync does
    assert sorted(str(p.relative_to(clone)) for p in (clone / "dags").rglob("*.py")) == [
        "dags/common/helpers.py",
        "dags/pipeline.py",
    ]
    again = push("--source", source, git_daemon)
    assert "nothing to push" in again.stdout
