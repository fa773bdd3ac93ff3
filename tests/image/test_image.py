"""airflow-azblob:local as Docker builds it from the repository's Dockerfile (here FROM the Airflow stand-in, with
requirements.lock as constraints): what every container of the chart relies on, checked inside the image."""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts.localcluster.images import APP_IMAGE, standins, vcs_ref
from tests.image.dockerfile import parse, requirement_pins
from tests.support.containers import docker
from tests.support.helm import env_of, render

pytestmark = pytest.mark.slow
BACKEND = "include.azblob_xcom_backend.WasbXComBackend"


@pytest.fixture(scope="module", autouse=True)
def _image(built_images: dict[str, float]) -> None:
    """Every test here runs the image this session built."""


def run_image(*args: str, env: dict[str, str] | None = None, workdir: str = "/tmp") -> subprocess.CompletedProcess:
    # The entrypoint's DB wait is off, as the chart sets it: these commands need no database.
    flags = [
        arg
        for key, value in {"CONNECTION_CHECK_MAX_COUNT": "0", **(env or {})}.items()
        for arg in ("-e", f"{key}={value}")
    ]
    # Not the image's WORKDIR /opt/airflow: `python -c` would import include/ from the working directory.
    return docker("run", "--rm", "--workdir", workdir, *flags, APP_IMAGE, *args)


def test_runs_as_the_airflow_user_with_the_dockerfiles_environment() -> None:
    done = run_image("bash", "-c", 'echo "$(id -u):$(id -g) $AIRFLOW_HOME $PYTHONPATH $AIRFLOW__CORE__XCOM_BACKEND"')
    assert done.returncode == 0, done.stderr
    env = parse().env
    assert done.stdout.split() == [f"{parse().user}:0", "/opt/airflow", env["PYTHONPATH"], BACKEND]


def test_backend_imports_from_opt_airflow_include_through_pythonpath() -> None:
    code = (
        "import include.azblob_xcom_backend as m; from airflow.sdk.bases.xcom import BaseXCom; "
        "assert issubclass(m.WasbXComBackend, BaseXCom); print(m.__file__)"
    )
    done = run_image("python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "/opt/airflow/include/azblob_xcom_backend.py"


def test_backend_does_not_import_without_the_images_pythonpath() -> None:
    done = run_image("python", "-c", "import include.azblob_xcom_backend", env={"PYTHONPATH": ""})
    assert done.returncode != 0
    assert "No module named 'include'" in done.stderr


def test_airflow_config_and_the_task_sdk_resolve_the_backend_the_image_selects() -> None:
    done = run_image("airflow", "config", "get-value", "core", "xcom_backend")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == BACKEND
    code = (
        "from airflow.sdk.execution_time.xcom import resolve_xcom_backend; "
        "cls = resolve_xcom_backend(); print(cls.__module__ + '.' + cls.__qualname__)"
    )
    done = run_image("python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == BACKEND


def test_the_task_process_loads_the_task_termination_listener_from_the_plugins_folder() -> None:
    code = (
        "from airflow.sdk.listener import get_listener_manager; "
        "print(sorted(getattr(p, '__file__', '') for p in get_listener_manager().pm.get_plugins()))"
    )
    done = run_image("python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert "/opt/airflow/include/plugins/task_termination.py" in done.stdout.strip().splitlines()[-1]


def test_every_pin_of_requirements_txt_is_installed_and_the_providers_load() -> None:
    code = (
        "import json, sys, importlib.metadata as md\n"
        "from airflow.providers.microsoft.azure.hooks.wasb import WasbHook\n"
        "from airflow.providers.microsoft.azure.log.wasb_task_handler import WasbTaskHandler\n"
        "from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor\n"
        "from airflow.providers.git.bundles.git import GitDagBundle\n"
        "print(json.dumps({n: md.version(n) for n in sys.argv[1:]}))"
    )
    wanted = requirement_pins()
    done = run_image("python", "-c", code, *wanted)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == wanted


def test_labels_name_the_base_image_and_the_commit_it_was_built_from() -> None:
    labels = json.loads(docker("image", "inspect", APP_IMAGE, check=True).stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == standins()["airflow"].image
    assert labels["org.opencontainers.image.revision"] == vcs_ref()
    assert labels["org.opencontainers.image.version"] == parse().args["AIRFLOW_VERSION"]


def test_every_module_of_the_venv_and_include_has_bytecode_the_read_only_root_needs() -> None:
    # The chart mounts the root filesystem read-only: a module without its .pyc is compiled at every import.
    code = (
        "import importlib.util, pathlib, sys\n"
        "roots = [pathlib.Path(p) for p in sys.argv[1:]]\n"
        "sources = [p for root in roots for p in root.rglob('*.py')]\n"
        "missing = [str(p) for p in sources if not pathlib.Path(importlib.util.cache_from_source(str(p))).exists()]\n"
        "print(len(sources), len(missing), missing[:5])"
    )
    site = "/home/airflow/.local/lib"
    done = run_image("python", "-c", code, site, "/opt/airflow/include")
    assert done.returncode == 0, done.stderr
    sources, missing, examples = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(sources) > 10_000
    assert int(missing) == 0, examples


def test_airflow_in_the_image_derives_the_async_db_url_with_the_charts_command() -> None:
    scheduler = render(profile="aks-example").get("Deployment", "scheduler")["spec"]["template"]["spec"]
    command = env_of(scheduler["containers"][0])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD"]
    sync_url = "postgresql://airflow:pw@db.postgres.database.azure.com:5432/airflow?sslmode=require"
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sync_url, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD": command}
    done = run_image("airflow", "config", "get-value", "database", "sql_alchemy_conn_async", env=env)
    assert done.returncode == 0, done.stderr
    expected = "postgresql+asyncpg://airflow:pw@db.postgres.database.azure.com:5432/airflow?ssl=require"
    assert done.stdout.strip().splitlines()[-1] == expected
