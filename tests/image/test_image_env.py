"""The image's Python environment, rebuilt in a venv exactly as the Dockerfile builds it (see image_env.py).

No Docker engine runs in CI, so this is how the image is proven: its packages resolve together, the XCom backend
imports through PYTHONPATH from the copied include/, Airflow resolves the backend the image selects, and the
providers load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.image.dockerfile import ROOT, parse
from tests.image.image_env import ImageEnv, build_image_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageEnv:
    return build_image_env(tmp_path_factory.mktemp("image-root"))


def pins() -> dict[str, str]:
    """name -> version of every ``name==version`` line in requirements.txt."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+).*", line)
        if match:
            found[re.sub(r"\[.*\]", "", match[1]).lower()] = match[2]
    return found


def test_venv_uses_the_images_python_version(image: ImageEnv) -> None:
    if image.python_version != image.wanted_python:
        pytest.skip(f"python{image.wanted_python} is not installed here; the env was rebuilt on {image.python_version}")
    assert image.python_version == image.wanted_python


def test_backend_imports_from_the_copied_include_through_pythonpath(image: ImageEnv) -> None:
    code = (
        "import include.azblob_xcom_backend as m; from airflow.sdk.bases.xcom import BaseXCom; "
        "assert issubclass(m.WasbXComBackend, BaseXCom); print(m.__file__)"
    )
    done = image.run("python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]).is_relative_to(image.root / "opt" / "airflow" / "include")


def test_backend_does_not_import_without_the_images_pythonpath(image: ImageEnv) -> None:
    env = {key: value for key, value in image.env.items() if key != "PYTHONPATH"}
    done = image.run("python", "-c", "import include.azblob_xcom_backend", env=env)
    assert done.returncode != 0
    assert "No module named 'include'" in done.stderr


def test_airflow_config_selects_the_backend_the_dockerfile_sets(image: ImageEnv) -> None:
    done = image.run("airflow", "config", "get-value", "core", "xcom_backend")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "include.azblob_xcom_backend.WasbXComBackend"
    assert parse().env["AIRFLOW__CORE__XCOM_BACKEND"] == "include.azblob_xcom_backend.WasbXComBackend"


def test_task_sdk_resolves_the_xcom_backend_class(image: ImageEnv) -> None:
    code = (
        "from airflow.sdk.execution_time.xcom import resolve_xcom_backend; "
        "cls = resolve_xcom_backend(); print(cls.__module__ + '.' + cls.__qualname__)"
    )
    done = image.run("python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "include.azblob_xcom_backend.WasbXComBackend"


def test_azure_and_kubernetes_providers_load_at_the_pinned_versions(image: ImageEnv) -> None:
    done = image.run("airflow", "providers", "list", "--output", "json")
    assert done.returncode == 0, done.stderr
    providers = {item["package_name"]: item["version"] for item in json.loads(done.stdout[done.stdout.index("[") :])}
    for package in ("apache-airflow-providers-microsoft-azure", "apache-airflow-providers-cncf-kubernetes"):
        assert providers.get(package) == pins()[package], f"{package}: {providers.get(package)}"
    code = (
        "from airflow.providers.microsoft.azure.hooks.wasb import WasbHook; "
        "from airflow.providers.microsoft.azure.log.wasb_task_handler import WasbTaskHandler; "
        "from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor; "
        "print('ok')"
    )
    done = image.run("python", "-c", code)
    assert done.returncode == 0, done.stderr


def test_every_pin_of_requirements_txt_is_installed(image: ImageEnv) -> None:
    code = "import json, sys, importlib.metadata as md; print(json.dumps({n: md.version(n) for n in sys.argv[1:]}))"
    wanted = pins()
    done = image.run("python", "-c", code, *wanted)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == wanted
