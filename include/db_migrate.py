"""`airflow db migrate` and `airflow db check-migrations` that first refuse a metadata DB a newer Airflow migrated.

Why: after a cross-version `helm rollback` (or an older image deployed by mistake) the DB holds an Alembic revision
this image's Airflow has never heard of. Airflow then fails far from the cause: the db-migrate Job with Alembic's
"Can't locate revision identified by ...", and every component's wait-for-migrations init container only after
``database.migrationWaitTimeout`` with "There are still unapplied migrations". Here each stops at once and says
what happened and what to run instead. The chart's db-migrate Job runs ``python -m include.db_migrate migrate`` and
the init containers ``python -m include.db_migrate check-migrations --migration-wait-timeout N``; any arguments
after the command are Airflow's own. A DB with no schema yet (a first install) and an older one pass through.
"""

from __future__ import annotations

import sys

COMMANDS = ("migrate", "check-migrations")
GUIDE = 'docs/chart.md, "Upgrades and rollbacks"'


class NewerSchemaError(RuntimeError):
    """The metadata DB was migrated by a newer Airflow than this one."""


def unknown_revisions(db_heads: tuple[str, ...], known: set[str]) -> list[str]:
    """The DB's Alembic heads this Airflow's migrations do not contain."""
    return [head for head in db_heads if head not in known]


def newer_schema_message(unknown: list[str], version: str, head: str) -> str:
    revisions = ", ".join(unknown)
    return (
        f"The metadata database is at Alembic revision {revisions}, which Airflow {version} in this image does not "
        f"know: a newer Airflow has migrated it, and this image must not run against it. Either deploy the newer "
        f"image again (helm upgrade), or first downgrade the schema with the newer image "
        f"(`airflow db downgrade --to-revision {head} --yes`, back to this image's head {head}) and then roll "
        f"back. See {GUIDE}."
    )


def check_schema_not_newer() -> None:
    """Raise NewerSchemaError if the DB's Alembic revision is one this Airflow's migrations lack."""
    from airflow import __version__, settings
    from airflow.utils.db import _get_alembic_config  # private: what Airflow's own db commands use
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_get_alembic_config())
    with settings.engine.connect() as connection:
        db_heads = MigrationContext.configure(connection).get_current_heads()
    unknown = unknown_revisions(db_heads, {revision.revision for revision in script.walk_revisions()})
    if unknown:
        raise NewerSchemaError(newer_schema_message(unknown, __version__, script.get_current_head()))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m include.db_migrate {{{'|'.join(COMMANDS)}}} [airflow's options]", file=sys.stderr)
        return 2
    try:
        check_schema_not_newer()
    except NewerSchemaError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 3
    from airflow.__main__ import main as airflow

    sys.argv = ["airflow", "db", *argv]
    airflow()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
