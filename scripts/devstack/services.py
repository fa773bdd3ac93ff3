"""Real local services: Azurite (npm) and PostgreSQL (Debian packages), each on a port of its own, stopped cleanly.

Used by the local stack (scripts/devstack/stack.py), the benchmark and the tests (tests/conftest.py), so there is
one way to start each service in this repository.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from scripts.paths import AZURITE_BIN

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll until something accepts connections on ``port``; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a process of another user counts); a zombie does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_process(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def azurite_connection_string(host: str, port: int) -> str:
    """A connection string with an explicit BlobEndpoint (the only form that keeps a dot-less host)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


def wasb_connection(connection_string: str) -> str:
    """An AIRFLOW_CONN_* value (JSON) for a WasbHook connection given by connection string."""
    import json

    return json.dumps({"conn_type": "wasb", "extra": {"connection_string": connection_string}})


class Azurite:
    """Azurite's Blob service from node_modules, in its own process group, with data in a temp dir."""

    def __init__(self, port: int | None = None, location: Path | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.log = log
        self._own_location = location is None
        self.location = location or Path(tempfile.mkdtemp(prefix="azurite-"))
        self.process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return azurite_connection_string("127.0.0.1", self.port)

    def start(self, timeout: float = 30) -> Azurite:
        if not AZURITE_BIN.exists():
            raise FileNotFoundError(f"{AZURITE_BIN} is missing: run `make install` (scripts/bootstrap node)")
        # Output goes to a file (or nowhere): an unread pipe would block a long-running Azurite once full.
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.log:
            output.close()
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self._own_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_bindir() -> Path:
    """Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin (not on PATH); PG_BINDIR overrides."""
    if override := os.environ.get("PG_BINDIR"):
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise FileNotFoundError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/<version>/bin): run `make install` "
            "(scripts/bootstrap postgres installs Debian's postgresql) or set PG_BINDIR"
        )
    return Path(found[-1]).parent


class Postgres:
    """A PostgreSQL cluster of its own (initdb in ``data_dir``) on 127.0.0.1:``port``, database ``airflow``.

    PostgreSQL refuses to run as root: as root the server runs as Debian's ``postgres`` system user, which then owns
    ``data_dir``. Trust authentication on loopback only: a development database, never a production one.
    ``tls`` (certificate, key) turns SSL on, so clients can connect the way a cloud database demands.
    """

    USER = "airflow"
    DATABASE = "airflow"

    def __init__(
        self, port: int | None = None, data_dir: Path | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="postgres-"))
        self.bindir = postgres_bindir()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL for Airflow's [database] sql_alchemy_conn."""
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root needs the 'postgres' system user (Debian's postgresql package)"
            ) from None
        return ["runuser", "-u", "postgres", "--", *argv]

    def _prepare(self) -> None:
        cluster = self.data_dir / "cluster"
        socket_dir = self.data_dir / "socket"
        socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres")
            shutil.chown(socket_dir, "postgres")
        if not (cluster / "PG_VERSION").exists():
            initdb = [str(self.bindir / "initdb"), "-D", str(cluster), "-U", self.USER, "-A", "trust", "-E", "UTF8",
                      "--no-instructions"]  # fmt: skip
            result = subprocess.run(self._as_server_user(initdb), capture_output=True, text=True, check=False)
            if result.returncode != 0:
                hint = ""
                if os.geteuid() == 0:
                    hint = (
                        f" The server runs as the 'postgres' user: every parent directory of {self.data_dir} must "
                        f"be searchable by it (chmod o+x), or choose a data directory elsewhere."
                    )
                raise RuntimeError(f"initdb failed for {cluster}: {result.stderr.strip()}{hint}")
        if self.tls:
            self._install_tls()

    def _install_tls(self) -> None:
        """Copy the certificate and key where the server user owns them (it refuses a key others can read)."""
        for source, target in zip(self.tls, self._tls_files, strict=True):
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if os.geteuid() == 0:
                shutil.chown(target, "postgres")

    @property
    def _tls_files(self) -> tuple[Path, Path]:
        return self.data_dir / "server.crt", self.data_dir / "server.key"

    def _server_options(self) -> list[str]:
        options = ["-c", "listen_addresses=127.0.0.1", "-k", str(self.data_dir / "socket")]
        if self.tls:
            cert, key = self._tls_files
            options += ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]
        return options

    def start(self, timeout: float = 60) -> Postgres:
        self._prepare()
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the server process
        self.process = subprocess.Popen(
            self._as_server_user(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data_dir / "cluster"),
                    "-p",
                    str(self.port),
                    *self._server_options(),
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
            self._create_database(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres")
                break
            except psycopg2.OperationalError:  # accepting connections before recovery finished
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction (nor in psycopg2's `with conn`)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.DATABASE}"')
        finally:
            conn.close()

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster: it ends its backends), SIGKILL to the group if it hangs."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
