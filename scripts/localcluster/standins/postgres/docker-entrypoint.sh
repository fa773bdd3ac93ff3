#!/usr/bin/env bash
# STAND-IN for the official postgres image's docker-entrypoint.sh: on the first start of an empty PGDATA, initdb
# with POSTGRES_USER/POSTGRES_PASSWORD (UTF8), scram-sha-256 for TCP clients, POSTGRES_DB created, init scripts
# run against a socket-only server; then `postgres` in the foreground, listening on all addresses.
set -euo pipefail

if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi
if [[ "${1:-}" != postgres ]]; then exec "$@"; fi

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

initialise() {
  if [[ -z "${POSTGRES_PASSWORD:-}" && "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]]; then
    echo "Error: the database is uninitialised and POSTGRES_PASSWORD is not set: set it (or" \
      "POSTGRES_HOST_AUTH_METHOD=trust, never in production)." >&2
    exit 1
  fi
  echo "initialising $PGDATA for user $POSTGRES_USER"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
    -D "$PGDATA" >/dev/null
  printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
  if [[ "$POSTGRES_DB" != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
      --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  local script
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh) echo "running $script"; bash "$script" ;;
      *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
}

mkdir -p "$PGDATA"
chmod 700 "$PGDATA"
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then initialise; fi
shift
exec postgres -c listen_addresses='*' "$@"
