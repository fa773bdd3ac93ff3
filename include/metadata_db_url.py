"""The async metadata-DB URL Airflow 3 needs, derived from the one URL every component already gets.

Why: Airflow 3 opens async sessions (asyncpg) beside its sync ones. Without ``[database] sql_alchemy_conn_async`` it
derives that URL by swapping the driver and keeping the query string, but asyncpg accepts none of libpq's query
parameters: the URL Azure Database for PostgreSQL needs, ``...?sslmode=require``, makes every async session fail
with ``connect() got an unexpected keyword argument 'sslmode'``. The chart therefore sets
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD=python -m include.metadata_db_url``: Airflow runs this module when a
process first reads the setting, and it prints the async URL made from ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (the
Secret the chart already mounts), so the DB URL stays one value in one Secret.

Translation (PostgreSQL): driver -> ``postgresql+asyncpg``; ``sslmode`` -> asyncpg's ``ssl`` (same modes);
``connect_timeout`` -> ``timeout``; user, password, host, port, database and asyncpg's own options unchanged.
A libpq option asyncpg has no keyword for (``sslrootcert``, ...) is refused with a message that says what to use
instead. Other databases get Airflow's own derivation. Standard library only: it starts as a short process of its own.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qsl, urlencode

SYNC_ENV = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"

# libpq's name -> asyncpg's keyword, where the meaning is the same.
RENAMED = {"sslmode": "ssl", "connect_timeout": "timeout"}

# libpq options asyncpg.connect() takes no keyword for -> the PG* variable asyncpg reads the same setting from, if any.
FROM_ENVIRONMENT = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslpassword": None,
    "application_name": None,
    "options": None,
    "keepalives": None,
    "keepalives_idle": None,
}

# What Airflow itself does for the databases this module does not translate (airflow.settings).
AIRFLOW_DRIVERS = {"sqlite": "aiosqlite", "mysql": "aiomysql"}


class UnsupportedOption(ValueError):
    """The sync URL carries a libpq option that cannot be expressed in an asyncpg URL."""


def async_url(sync_url: str) -> str:
    """The SQLAlchemy async URL for ``sync_url`` (``postgresql[+driver]://...``)."""
    scheme, _, rest = sync_url.partition(":")
    database = scheme.split("+", 1)[0]
    if database != "postgresql":
        driver = AIRFLOW_DRIVERS.get(database)
        return f"{database}+{driver}:{rest}" if driver else sync_url
    address, _, options = rest.partition("?")
    query = []
    for key, value in parse_qsl(options, keep_blank_values=True):
        if key in FROM_ENVIRONMENT:
            raise UnsupportedOption(_unsupported(key))
        query.append((RENAMED.get(key, key), value))
    return f"postgresql+asyncpg:{address}" + (f"?{urlencode(query)}" if query else "")


def _unsupported(key: str) -> str:
    variable = FROM_ENVIRONMENT[key]
    instead = f"set the {variable} environment variable instead" if variable else "drop it"
    return (
        f"the metadata DB URL has the libpq option {key!r}, which asyncpg (Airflow's async driver) does not "
        f"accept: {instead}, or give the async URL yourself (chart value database.existingSecretAsyncKey, "
        f"or [database] sql_alchemy_conn_async)"
    )


def main() -> int:
    sync_url = os.environ.get(SYNC_ENV)
    if not sync_url:
        print(f"{SYNC_ENV} is not set: the metadata DB URL comes from the chart's database Secret", file=sys.stderr)
        return 2
    try:
        url = async_url(sync_url)
    except UnsupportedOption as err:
        print(err, file=sys.stderr)
        return 2
    sys.stdout.write(url)  # no newline: Airflow takes the command's output verbatim
    return 0


if __name__ == "__main__":
    sys.exit(main())
