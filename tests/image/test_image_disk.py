"""What rebuilding images leaves on this machine's disk: an image a rebuild replaced is removed with it, unless
something else still names it (scripts/localcluster/images.py, ``replacing``)."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import pytest

from scripts.localcluster import images

pytestmark = pytest.mark.slow


def import_image(tag: str, content: bytes) -> str:
    """An image of one file, imported (nothing to pull): its ID."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("content")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    subprocess.run(
        [images.docker_binary(), "import", "-", tag], input=archive.getvalue(), capture_output=True, check=True
    )
    image_id = images.image_id(tag)
    assert image_id
    return image_id


@pytest.fixture
def tags(docker_engine: None) -> Iterator[list[str]]:
    names = [f"airflow-azblob-test/{name}:{uuid.uuid4().hex[:8]}" for name in ("rebuilt", "other")]
    yield names
    images.docker("image", "rm", "--force", *names, check=False)


def test_a_rebuild_removes_the_image_it_replaced(tags: list[str]) -> None:
    rebuilt, _ = tags
    first = import_image(rebuilt, b"first build")
    with images.replacing(rebuilt):
        second = import_image(rebuilt, b"second build")
    assert second != first
    assert images.image_id(first) is None, "the replaced image was left dangling"
    assert images.image_id(rebuilt) == second


def test_an_image_another_tag_still_names_is_kept(tags: list[str]) -> None:
    rebuilt, other = tags
    first = import_image(rebuilt, b"first build")
    images.docker("tag", rebuilt, other)
    with images.replacing(rebuilt):
        import_image(rebuilt, b"second build")
    assert images.image_id(other) == first


def test_an_unchanged_rebuild_keeps_its_image(tags: list[str]) -> None:
    rebuilt, _ = tags
    first = import_image(rebuilt, b"same")
    with images.replacing(rebuilt):
        images.docker("tag", first, rebuilt)  # a build the layer cache answered: same ID
    assert images.image_id(rebuilt) == first
