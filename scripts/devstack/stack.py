"""The local stack behind `make up`: Airflow 3 with Blob XComs and logs on one machine, no Docker, no Kubernetes.

    scripts/local-stack up [--detach] [--db sqlite|postgres]   start (foreground: Ctrl-C stops everything)
    scripts/local-stack down                                  stop what a detached `up` started
    scripts/local-stack status | demo | push-dags             (see --help)

It runs the same Airflow components as the chart (api-server, scheduler, dag-processor, triggerer) with the
chart's own airflow.cfg: `helm template` renders templates/configmaps/airflow-config.yaml with
config/profiles/local.yaml plus this machine's hosts, ports and paths (LOCAL_KEYS). Only the executor differs
(LocalExecutor). Around them: Azurite (npm) for Blob Storage, SQLite or PostgreSQL (Debian packages) for the
metadata DB, and a local bare Git repository of DAGs that Airflow's GitDagBundle fetches from (scripts/push-dags
commits to it, exactly as the kind workflow pushes to its in-cluster Git server).

Everything lives in the state directory (default .local/, override with --state-dir or LOCAL_STACK_DIR):
airflow/ (AIRFLOW_HOME: airflow.cfg, logs, passwords.json, airflow.db), azurite/, postgres/, git/dags.git,
bundles/, run/ (process logs and pids.json), secrets.json (generated once, mode 0600).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import contextlib
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a file: the checkout's root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts import chart
from scripts.devstack.services import Azurite, Postgres, pid_alive
from scripts.paths import AZURITE_BIN, HELM, ROOT

VENV_BIN = Path(sys.executable).parent
PROFILE = ROOT / "config" / "profiles" / "local.yaml"
CONFIG_TEMPLATE = "templates/configmaps/airflow-config.yaml"
CONNECTION_TEMPLATE = "templates/secrets/azure-connection.yaml"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTHY_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
ADMIN = "admin"

# The airflow.cfg keys that name this machine's paths: the chart renders image paths (/opt/airflow/...) there.
# Hosts and ports come in through chart values (apiServer.internalUrl, dags.gitBundle.repoUrl) instead.
LOCAL_KEYS = {
    ("core", "dags_folder"): "airflow/dags",
    ("core", "simple_auth_manager_passwords_file"): "airflow/passwords.json",
    ("logging", "base_log_folder"): "airflow/logs",
    ("dag_processor", "dag_bundle_storage_path"): "bundles",
}
# The keys that name the project's own files, which the image bakes under its PYTHONPATH (/opt/airflow) and this
# machine reads from the checkout: chart value -> path in the checkout.
PROJECT_KEYS = {("core", "plugins_folder"): "include/plugins"}
# The chart's db-migrate Job runs `python` with these: the same refusal of a schema a newer Airflow migrated here.
MIGRATE_ARGS = ("-m", "include.db_migrate", "migrate")


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


class StackError(Exception):
    """Something the user has to fix; the message says what."""


@dataclass
class Settings:
    state_dir: Path
    api_port: int = 8080
    azurite_port: int = 10000
    postgres_port: int = 5433
    db: str = "sqlite"
    dags: Path = ROOT / "dags"

    @property
    def home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def git_repo(self) -> Path:
        return self.state_dir / "git" / "dags.git"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def azurite_url(self) -> str:
        return f"http://127.0.0.1:{self.azurite_port}"


# ------------------------------------------------------------------------------------------- airflow.cfg


def render_chart_config(values: list[Path], sets: dict[str, str]) -> configparser.ConfigParser:
    """airflow.cfg exactly as the chart renders it for these values files and --set overrides."""
    if not HELM.exists():
        raise StackError(f"{HELM} is missing: run `make install` (scripts/bootstrap helm)")
    try:
        return chart.airflow_cfg(chart.template(values, set_strings=sets, show_only=CONFIG_TEMPLATE))
    except chart.HelmError as err:
        raise StackError(f"helm could not render airflow.cfg: {err.stderr.strip()}") from err


def local_values(settings: Settings) -> dict[str, str]:
    """What the local stack sets on top of the local profile: this machine's hosts, ports and paths."""
    return {
        "apiServer.internalUrl": settings.api_url,
        "dags.gitBundle.repoUrl": settings.git_repo.as_uri(),
        "azurite.blobEndpoint": f"{settings.azurite_url}/devstoreaccount1",
    }


def local_config(settings: Settings) -> configparser.ConfigParser:
    """The chart's airflow.cfg for the local profile, with this machine's hosts, ports and paths."""
    cfg = render_chart_config([PROFILE], local_values(settings))
    for (section, key), relative in LOCAL_KEYS.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        cfg.set(section, key, str(settings.state_dir / relative))
    for (section, key), relative in PROJECT_KEYS.items():
        cfg.set(section, key, str(ROOT / relative))
    return cfg


def local_connection(settings: Settings) -> str:
    """The chart's Azure Storage connection (the AIRFLOW_CONN_* JSON of its Secret) for the local profile, with
    this machine's Azurite endpoint: the same extra, client options included, as the pods get."""
    try:
        [secret] = chart.template([PROFILE], set_strings=local_values(settings), show_only=CONNECTION_TEMPLATE)
    except chart.HelmError as err:
        raise StackError(f"helm could not render the Azure connection: {err.stderr.strip()}") from err
    return base64.b64decode(secret["data"]["connection"]).decode()


def write_config(cfg: configparser.ConfigParser, path: Path) -> None:
    text = io.StringIO()
    cfg.write(text)
    path.write_text(text.getvalue())


# --------------------------------------------------------------------------------------------- secrets


def load_secrets(settings: Settings) -> dict[str, str]:
    """Fernet key, [api] secret_key, [api_auth] jwt_secret and the admin password: generated once, then reused
    (a new JWT secret per start would break running tasks; a new Fernet key would lose stored connections)."""
    path = settings.state_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "fernet_key": Fernet.generate_key().decode(),
        "api_secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(32),
        "admin_password": secrets.token_urlsafe(12),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values, indent=2))
    return values


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Running:
    """What a started stack left behind: process ids (each the leader of its own process group)."""

    pids: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path(settings: Settings) -> Path:
        return settings.run_dir / "pids.json"

    def save(self, settings: Settings) -> None:
        self.path(settings).write_text(json.dumps(asdict(self), indent=2, default=str))

    @classmethod
    def load(cls, settings: Settings) -> Running | None:
        path = cls.path(settings)
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def alive(self) -> dict[str, int]:
        return {name: pid for name, pid in self.pids.items() if pid_alive(pid)}


# [alerts] webhook_url of include/plugins/failure_alerts.py as the chart sets it from its alerts.webhook Secret
# (the plugin pulls in Airflow, so the name lives here; the tests of the chart and of the plugin import it).
ALERTS_WEBHOOK_ENV = "AIRFLOW__ALERTS__WEBHOOK_URL"


def airflow_env(settings: Settings, secret: dict[str, str], db_url: str, conn_id: str) -> dict[str, str]:
    """The environment every Airflow process gets: what the chart passes from Secrets, here from secrets.json."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    if webhook := os.environ.get(ALERTS_WEBHOOK_ENV):  # the chart's alerts.webhook Secret, from the caller's shell
        env[ALERTS_WEBHOOK_ENV] = webhook
    env.update(
        {
            "AIRFLOW_HOME": str(settings.home),
            "AIRFLOW_CONFIG": str(settings.home / "airflow.cfg"),
            "PYTHONPATH": str(ROOT),  # as /opt/airflow in the image: include.azblob_xcom_backend importable
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
            "AIRFLOW__API__SECRET_KEY": secret["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
            f"AIRFLOW_CONN_{conn_id.upper()}": local_connection(settings),
        }
    )
    return env


def start_component(name: str, argv: list[str], env: dict[str, str], settings: Settings) -> subprocess.Popen:
    log = open(settings.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return process


def run_checked(env: dict[str, str], argv: list[str], *, timeout: float = 600) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        shown = " ".join([Path(argv[0]).name, *argv[1:]])
        raise StackError(f"`{shown}` failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def wait_healthy(settings: Settings, processes: dict[str, subprocess.Popen], timeout: float = 240) -> None:
    """Poll /api/v2/monitor/health until the DB, scheduler, triggerer and dag-processor all report healthy."""
    deadline = time.monotonic() + timeout
    last: Any = "no answer yet"
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}: see {settings.run_dir / (name + '.log')}")
        try:
            with urllib.request.urlopen(f"{settings.api_url}/api/v2/monitor/health", timeout=5) as response:
                last = json.loads(response.read())
            if all((last.get(c) or {}).get("status") == "healthy" for c in HEALTHY_COMPONENTS):
                return
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = str(err)
        time.sleep(1)
    raise StackError(f"Airflow was not healthy within {timeout:.0f} s; last health answer: {last}")


# ----------------------------------------------------------------------------------------------- the stack


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes: dict[str, subprocess.Popen] = {}

    def up(self) -> None:
        s = self.settings
        for path in (s.home, s.run_dir, s.state_dir / "azurite", s.git_repo.parent, s.state_dir / "bundles"):
            path.mkdir(parents=True, exist_ok=True)
        secret = load_secrets(s)
        cfg = local_config(s)
        conn_id = cfg.get("azblob_xcom", "conn_id")

        step(f"Azurite (Blob Storage) on {s.azurite_url}")
        if not AZURITE_BIN.exists():
            raise StackError(f"{AZURITE_BIN} is missing: run `make install`")
        azurite = Azurite(port=s.azurite_port, location=s.state_dir / "azurite", log=s.run_dir / "azurite.log")
        self.processes["azurite"] = azurite.start().process
        self._save_running()

        if s.db == "postgres":
            step(f"PostgreSQL on 127.0.0.1:{s.postgres_port}")
            postgres = Postgres(port=s.postgres_port, data_dir=s.state_dir / "postgres").start()
            self.processes["postgres"] = postgres.process
            self._save_running()
            db_url = postgres.url
        else:
            step(f"SQLite metadata DB at {s.home / 'airflow.db'}")
            db_url = f"sqlite:///{s.home / 'airflow.db'}"

        step(f"airflow.cfg from the chart (helm template, {PROFILE.relative_to(ROOT)}) -> {s.home / 'airflow.cfg'}")
        write_config(cfg, s.home / "airflow.cfg")
        (s.home / "passwords.json").write_text(json.dumps({ADMIN: secret["admin_password"]}))
        env = airflow_env(s, secret, db_url, conn_id)

        step("airflow db migrate (include/db_migrate.py, as the chart's db-migrate Job)")
        run_checked(env, [str(VENV_BIN / "python"), *MIGRATE_ARGS])

        containers = {cfg.get("azblob_xcom", "container"), cfg.get("azure_remote_logging", "remote_wasb_log_container")}
        step(f"Blob containers: {', '.join(sorted(containers))}")
        created = subprocess.run(  # the chart's create-containers Job script: one way to create them
            [sys.executable, str(ROOT / "chart" / "files" / "scripts" / "create_containers.py")],
            env={
                **env,
                "BLOB_CONN_ID": conn_id,
                "BLOB_CONTAINERS": ",".join(sorted(containers)),
                "BLOB_WAIT_SECONDS": "30",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            raise StackError(f"could not create the Blob containers: {(created.stderr or created.stdout).strip()}")

        step(f"Git repository of DAGs at {s.git_repo} (from {s.dags})")
        push_dags(s, s.dags, quiet=True)

        for name in COMPONENTS:
            step(f"airflow {name}")
            argv = [str(VENV_BIN / "airflow"), name]
            if name == "api-server":
                argv += ["--port", str(s.api_port), "--host", "127.0.0.1", "--workers", "1"]
            self.processes[name] = start_component(name, argv, env, s)
            self._save_running()

        step("waiting for the api-server, scheduler, dag-processor and triggerer to report healthy")
        wait_healthy(s, {n: self.processes[n] for n in COMPONENTS})
        print(
            f"\nAirflow is up: {s.api_url}  (login {ADMIN} / {secret['admin_password']})\n"
            f"  Blob Storage (Azurite): {s.azurite_url}/devstoreaccount1   DB: {db_url}\n"
            f"  DAGs: edit dags/ then `make push-dags-local` (GitDagBundle refreshes every 10 s)\n"
            f"  Logs of each process: {s.run_dir}/<component>.log",
            flush=True,
        )

    def _save_running(self) -> None:
        Running(
            pids={name: p.pid for name, p in self.processes.items()},
            settings={k: str(v) for k, v in asdict(self.settings).items()},
        ).save(self.settings)

    def wait(self) -> None:
        """Foreground mode: block until Ctrl-C (or SIGTERM) or until a process dies."""
        stop = {"signal": None}

        def on_signal(signum: int, _frame: Any) -> None:
            stop["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        print("Press Ctrl-C to stop everything.", flush=True)
        while stop["signal"] is None:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}: see {self.settings.run_dir / (name + '.log')}")
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        stop_stack(self.settings)


def stop_stack(settings: Settings) -> list[str]:
    """Stop every process group pids.json names (Airflow first, then storage and DB); return what was stopped."""
    running = Running.load(settings)
    if running is None:
        return []
    order = [*reversed(COMPONENTS), "postgres", "azurite"]
    stopped = []
    for name in sorted(running.pids, key=lambda n: order.index(n) if n in order else -1):
        pid = running.pids[name]
        if not pid_alive(pid):
            continue
        step(f"stopping {name} (process group {pid})")
        sig = signal.SIGINT if name == "postgres" else signal.SIGTERM  # postgres: fast shutdown
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            continue
        _wait_gone(pid, timeout=20)
        stopped.append(name)
    Running.path(settings).unlink(missing_ok=True)
    for pid, command in stack_processes(settings.state_dir):  # e.g. a task process in a session of its own
        print(f"stopping leftover process {pid}: {command}", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stopped


def stack_processes(state_dir: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every live process of this stack: each names the state dir on its command line
    (Azurite, PostgreSQL) or in its environment (Airflow: AIRFLOW_HOME)."""
    marker = str(state_dir).encode() + b"/"  # "/" so that /tmp/x never matches /tmp/x2
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or not pid_alive(int(proc.name)):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or b"AIRFLOW_HOME=" + marker in environ:
            found.append((int(proc.name), cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]))
    return found


def _wait_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(pid_alive(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == pgid)


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().split(") ", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def push_dags(settings: Settings, source: Path, *, quiet: bool = False) -> None:
    """Commit ``source`` as dags/ on branch main of the local repository (scripts/push-dags, as the kind flow)."""
    if not (settings.git_repo / "HEAD").exists():
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(settings.git_repo)], check=True
        )
    result = subprocess.run(
        [str(ROOT / "scripts" / "push-dags"), "--source", str(source), settings.git_repo.as_uri()],
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"scripts/push-dags failed: {(result.stderr or '').strip()}")


# ------------------------------------------------------------------------------------------------- CLI


def settings_from(args: argparse.Namespace) -> Settings:
    state = Path(args.state_dir or os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local").resolve()
    saved = Running.load(Settings(state_dir=state))
    base = Settings(state_dir=state)
    if saved and saved.settings and args.command != "up":  # down/status/demo reuse the ports `up` chose
        base = Settings(
            state_dir=state,
            api_port=int(saved.settings["api_port"]),
            azurite_port=int(saved.settings["azurite_port"]),
            postgres_port=int(saved.settings["postgres_port"]),
            db=saved.settings["db"],
            dags=Path(saved.settings["dags"]),
        )
    for name in ("api_port", "azurite_port", "postgres_port", "db"):
        if getattr(args, name, None) is not None:
            setattr(base, name, getattr(args, name))
    return base


def cmd_up(settings: Settings, detach: bool) -> int:
    running = Running.load(settings)
    if running and running.alive():
        print(f"The local stack is already running ({', '.join(running.alive())}): {settings.api_url}")
        print("Stop it with `make down`.")
        return 0
    if running:
        stop_stack(settings)  # a previous run that died: clear what is left
    stack = LocalStack(settings)
    try:
        stack.up()
    except BaseException:
        stack.stop()
        raise
    if detach:
        return 0
    try:
        stack.wait()
    finally:
        stack.stop()
    return 0


def cmd_status(settings: Settings) -> int:
    running = Running.load(settings)
    if not running:
        print("The local stack is not running (make up).")
        return 1
    alive = running.alive()
    for name, pid in running.pids.items():
        print(f"  {name:<14} pid {pid:<8} {'running' if name in alive else 'stopped'}")
    print(f"UI: {settings.api_url}")
    return 0 if len(alive) == len(running.pids) else 1


def cmd_demo(settings: Settings, dag_id: str) -> int:
    """Trigger a DAG through the REST API and show its task states, XCom references and blobs."""
    from scripts import airflow_api, kind_smoke

    running = Running.load(settings)
    if not running or not running.alive():
        raise StackError("the local stack is not running: start it with `make up` (or `make up DETACH=1`)")
    password = json.loads((settings.state_dir / "secrets.json").read_text())["admin_password"]
    api = airflow_api.Api(settings.api_url)
    api.authenticate(ADMIN, password)
    step(f"triggering {dag_id} on {settings.api_url}")
    run_id = airflow_api.run_dag(api, dag_id, timeout=600)
    step("task states and the XComs stored in the metadata DB")
    task_ids = airflow_api.show_tasks(api, dag_id, run_id)
    step(f"blobs of run {run_id} in Azurite ({settings.azurite_url})")
    kind_smoke.show_blobs(settings.azurite_url, dag_id, run_id, task_ids)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/local-stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state-dir", help="where the stack keeps its state (default .local/ or LOCAL_STACK_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (foreground unless --detach)")
    up.add_argument("--detach", action="store_true", help="start in the background and return (stop: down)")
    up.add_argument("--db", choices=("sqlite", "postgres"), help="metadata DB (default sqlite)")
    up.add_argument("--api-port", type=int, help="api-server port (default 8080)")
    up.add_argument("--azurite-port", type=int, help="Azurite Blob port (default 10000)")
    up.add_argument("--postgres-port", type=int, help="PostgreSQL port with --db postgres (default 5433)")
    sub.add_parser("down", help="stop the stack and every process it started")
    sub.add_parser("status", help="which processes run, and the UI URL")
    demo = sub.add_parser("demo", help="run a DAG via the REST API and show its XComs and blobs")
    demo.add_argument("--dag-id", default="example_dataframe_pipeline")
    push = sub.add_parser("push-dags", help="commit a DAG folder to the stack's Git repository")
    push.add_argument("--source", type=Path, default=ROOT / "dags", help="folder of DAG files (default dags/)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    try:
        if args.command == "up":
            return cmd_up(settings, args.detach)
        if args.command == "down":
            stopped = stop_stack(settings)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            return 0
        if args.command == "status":
            return cmd_status(settings)
        if args.command == "demo":
            return cmd_demo(settings, args.dag_id)
        push_dags(settings, args.source)
        return 0
    except StackError as err:
        print(f"local-stack: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: cmd_up has already stopped what was started
        print("local-stack: interrupted; everything it started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
