"""A cloud database's URL (``...?sslmode=require``, as the AKS example documents) works for Airflow's async sessions.

The chart gives the components that use the metadata DB one URL from one Secret and, for the async sessions,
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD (include/metadata_db_url.py) or a key of the user's Secret. Checked
against a real PostgreSQL with SSL on: Airflow's own derivation fails there, the chart's environment connects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.metadata_db_url import async_url
from scripts.devstack.services import Postgres
from scripts.devstack.stack import MIGRATE_ARGS
from scripts.localcluster.pki import Identity, Pki
from tests.support.helm import Manifest, env_of, render

SYNC = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
ASYNC = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
DB_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

# Both sessions, as a component opens them: each reports whether its connection is encrypted.
BOTH_SESSIONS = """
import asyncio
from sqlalchemy import text
from airflow import settings

QUERY = text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
with settings.Session() as session:
    print("sync ssl", session.execute(QUERY).scalar())

async def main():
    async with settings.AsyncSession() as session:
        print("async ssl", (await session.execute(QUERY)).scalar())
    await settings.async_engine.dispose()  # inside the loop: asyncpg cannot close its connections after it

asyncio.run(main())
"""


def db_env(manifest: Manifest, component: str) -> dict:
    spec = manifest.get("Deployment", component)["spec"]["template"]["spec"]
    return env_of(spec["containers"][0])


@pytest.mark.parametrize(
    ("sync_url", "expected"),
    [
        (
            "postgresql://airflow:p%40ss@db.postgres.database.azure.com:5432/airflow?sslmode=require",
            "postgresql+asyncpg://airflow:p%40ss@db.postgres.database.azure.com:5432/airflow?ssl=require",
        ),
        (
            "postgresql+psycopg2://airflow@h/airflow?sslmode=verify-full&connect_timeout=10",
            "postgresql+asyncpg://airflow@h/airflow?ssl=verify-full&timeout=10",
        ),
        ("postgresql://airflow:pw@h:5432/airflow", "postgresql+asyncpg://airflow:pw@h:5432/airflow"),
        ("postgresql:///airflow?host=/run/postgresql", "postgresql+asyncpg:///airflow?host=%2Frun%2Fpostgresql"),
        ("sqlite:////tmp/airflow.db", "sqlite+aiosqlite:////tmp/airflow.db"),
    ],
    ids=["azure sslmode", "driver and timeout", "plain", "unix socket", "sqlite as airflow does"],
)
def test_the_async_url_speaks_asyncpg(sync_url: str, expected: str) -> None:
    assert async_url(sync_url) == expected


def test_a_libpq_option_asyncpg_lacks_stops_the_component_with_what_to_do_instead() -> None:
    url = "postgresql://airflow@h/airflow?sslmode=verify-full&sslrootcert=/etc/ssl/azure.pem"
    done = subprocess.run(
        [sys.executable, "-m", "include.metadata_db_url"],
        env={**os.environ, SYNC: url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "'sslrootcert'" in done.stderr
    assert "PGSSLROOTCERT" in done.stderr
    assert "database.existingSecretAsyncKey" in done.stderr


def test_every_component_with_the_db_derives_the_async_url_from_the_same_secret() -> None:
    manifest = render(profile="aks-example")
    for component in DB_COMPONENTS:
        env = db_env(manifest, component)
        assert env[SYNC]["secretKeyRef"] == {"name": "airflow-metadata-db", "key": "connection"}, component
        assert env[f"{ASYNC}_CMD"] == "python -m include.metadata_db_url", component
        assert ASYNC not in env, component
    assert SYNC not in env_of(manifest.worker_pod_template()["spec"]["containers"][0])


def test_an_async_url_key_of_the_users_secret_replaces_the_derivation() -> None:
    manifest = render({"database.existingSecretAsyncKey": "async-connection"}, profile="aks-example")
    for component in DB_COMPONENTS:
        env = db_env(manifest, component)
        assert env[ASYNC]["secretKeyRef"] == {"name": "airflow-metadata-db", "key": "async-connection"}, component
        assert f"{ASYNC}_CMD" not in env, component


@pytest.fixture(scope="module")
def ssl_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.ensure_ca()
    pki.issue(Identity("postgres", "127.0.0.1", ip_addresses=("127.0.0.1",), server=True, client=False))
    with Postgres(tls=(pki.path("postgres", "crt"), pki.path("postgres", "key"))) as postgres:
        yield postgres


def image_env(env: dict[str, str]) -> dict[str, str]:
    """This environment plus ``env``, with the venv first on PATH: `python` and `airflow` as in the image."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}


def run_component(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BOTH_SESSIONS],
        env=image_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_with_the_charts_environment_both_sessions_connect_over_ssl(ssl_postgres: Postgres) -> None:
    manifest = render(profile="aks-example")
    command = db_env(manifest, "api-server")[f"{ASYNC}_CMD"]
    done = run_component({SYNC: f"{ssl_postgres.url}?sslmode=require", f"{ASYNC}_CMD": command})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["sync ssl True", "async ssl True"], done.stdout


def test_airflows_own_derivation_fails_on_the_same_url(ssl_postgres: Postgres) -> None:
    """Why the chart sets the async URL: without it, the async session gets libpq's sslmode and refuses it."""
    done = run_component({SYNC: f"{ssl_postgres.url}?sslmode=require"})
    assert done.returncode != 0
    assert "unexpected keyword argument 'sslmode'" in done.stderr


# A revision no Airflow has: the DB as a newer Airflow's migration would leave it, for this image.
NEWER_REVISION = "0123456789ab"


def migrate_args() -> list[str]:
    """The db-migrate Job's command."""
    return render().get("Job", "db-migrate-1")["spec"]["template"]["spec"]["containers"][0]["args"]


def wait_for_migrations_args() -> list[str]:
    """The command of the components' wait-for-migrations init container."""
    init = render().get("Deployment", "scheduler")["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "wait-for-migrations"
    return init["args"]


@pytest.fixture(scope="module")
def migrated_postgres() -> Iterator[Postgres]:
    """A PostgreSQL migrated the chart's way: the db-migrate Job's command on an empty database."""
    with Postgres() as postgres:
        done = run_migrate_command(postgres, *migrate_args())
        assert done.returncode == 0, done.stderr[-3000:]
        yield postgres


def run_migrate_command(postgres: Postgres, *argv: str) -> subprocess.CompletedProcess:
    """``argv`` as a chart container runs it (``python`` or ``airflow`` of the image), against ``postgres``."""
    return subprocess.run(
        list(argv),
        env=image_env({SYNC: postgres.url}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def alembic_revision(postgres: Postgres, new: str | None = None) -> str:
    """The DB's Alembic revision; with ``new``, set it first (what a newer Airflow's migration leaves)."""
    import psycopg2

    db = psycopg2.connect(host="127.0.0.1", port=postgres.port, user=postgres.USER, dbname=postgres.DATABASE)
    try:
        with db, db.cursor() as cursor:  # one transaction, committed
            if new:
                cursor.execute("UPDATE alembic_version SET version_num = %s", (new,))
            cursor.execute("SELECT version_num FROM alembic_version")
            return cursor.fetchone()[0]
    finally:
        db.close()


def test_the_charts_migrate_and_wait_commands_pass_on_a_current_schema(migrated_postgres: Postgres) -> None:
    for args in (wait_for_migrations_args(), migrate_args()):
        done = run_migrate_command(migrated_postgres, *args)
        assert done.returncode == 0, (args, done.stderr[-3000:])


def test_a_schema_a_newer_airflow_migrated_is_refused_at_once_with_the_downgrade_to_run(
    migrated_postgres: Postgres,
) -> None:
    """Plain Airflow fails with Alembic's words (migrate) or only after the wait (check-migrations); the chart's
    commands stop at once, name the revision, and print the downgrade back to this image's head. Nothing changes."""
    from airflow.utils.db import _get_script_object

    head = alembic_revision(migrated_postgres)
    assert head == _get_script_object().get_current_head()
    alembic_revision(migrated_postgres, NEWER_REVISION)
    try:
        plain = run_migrate_command(migrated_postgres, "airflow", "db", "migrate")
        assert plain.returncode != 0
        assert f"Can't locate revision identified by '{NEWER_REVISION}'" in plain.stderr + plain.stdout

        for args in (migrate_args(), wait_for_migrations_args()):
            done = run_migrate_command(migrated_postgres, *args)
            assert done.returncode == 3, (args, done.stderr[-3000:])
            assert f"Alembic revision {NEWER_REVISION}" in done.stderr
            assert "a newer Airflow has migrated it" in done.stderr
            assert f"airflow db downgrade --to-revision {head} --yes" in done.stderr
            assert "Waiting for migrations" not in done.stderr  # refused at once, not after the wait
        assert alembic_revision(migrated_postgres) == NEWER_REVISION  # refused before touching anything
    finally:
        alembic_revision(migrated_postgres, head)


def test_the_local_stack_migrates_with_the_charts_command() -> None:
    assert migrate_args() == ["python", *MIGRATE_ARGS]
