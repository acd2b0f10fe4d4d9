"""`grassroots up` and `grassroots status`: run every service locally and report on them.

`up` keeps all state under var/: SQLite databases, the broker's data (when it starts one),
logs, the signing key and the API tokens. A lock file stops a second `up` from starting the
same services twice on the same databases.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import requests

from shared.eventlog import Signer
from shared.runtime import catalogue
from shared.runtime.config import ROOT, VAR, config_path
from shared.runtime.trust import ENV_VAR as PRINCIPAL_ENV
from shared.runtime.trust import principal_key
from shared.tools import brokerauth
from shared.tools.broker import HOST, LocalRabbit, amqp_answers

STATE = VAR / "up.json"
# Libraries' notices about their own deprecations are not for operators to read.
QUIET = "ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning"


def signing_key() -> str:
    """The key that signs log checkpoints: GRASSROOTS_SIGNING_KEY, else one kept in var/."""
    if os.environ.get("GRASSROOTS_SIGNING_KEY"):
        return os.environ["GRASSROOTS_SIGNING_KEY"]
    path = VAR / "signing.key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.write_text(Signer.generate() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


class Platform:
    """The processes `up` started, so that Ctrl-C stops exactly those."""

    def __init__(
        self, out: TextIO = sys.stdout, var: Path = VAR, env: dict[str, str] | None = None
    ) -> None:
        self.out = out
        self.var = var
        self.extra_env = env or {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.rabbit: LocalRabbit | None = None
        self.amqp_uri = ""  # the operator's login: status, rebuild
        self.service_uris: dict[str, str] = {}  # each service's own login
        self.api = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def start_broker(self) -> None:
        """An outside broker when AMQP_URI answers (each service logging in with
        <SERVICE>_AMQP_URI when set, else AMQP_URI), else our own node, where each service
        logs in as its own user (passwords in var/broker/users.json)."""
        uri = os.environ.get("AMQP_URI")
        if uri and amqp_answers(uri):
            self.amqp_uri = uri
            self.service_uris = {name: os.environ.get(f"{name.upper()}_AMQP_URI") or uri
                                 for name in catalogue.names()}
            self.say(f"broker: using {uri.split('@')[-1]}")
            return
        port = int(os.environ.get("GRASSROOTS_AMQP_PORT", "5672"))
        rabbit = LocalRabbit(self.var / "rabbitmq", port, f"grassroots-{port}",
                             users_file=users_file(self.var))
        self.service_uris = {name: rabbit.uris[name] for name in catalogue.names()}
        if amqp_answers(rabbit.uri):
            self.amqp_uri = rabbit.uri  # left running by an earlier `up` that was killed
            self.say(f"broker: reusing the local RabbitMQ node on 127.0.0.1:{port}")
            self.rabbit = rabbit
            return
        self.say(f"broker: starting a local RabbitMQ node on 127.0.0.1:{port} ...")
        rabbit.start()
        self.rabbit, self.amqp_uri = rabbit, rabbit.uri

    def env(self, service: str | None = None) -> dict[str, str]:
        """The environment of a service's process: its own broker login among the rest."""
        env = dict(os.environ)
        env.update(AMQP_URI=self.service_uris.get(service or "", self.amqp_uri),
                   GATEWAY_ADDRESS=self.api, PYTHONWARNINGS=QUIET)
        for name in catalogue.names():  # every database in var/ unless the operator names one
            env.setdefault(f"{name.upper()}_DATABASE_URL", f"sqlite:///{self.var / name}.db")
        for name in catalogue.names("write"):  # residents' keys apart from the logs
            env.setdefault(f"{name.upper()}_KEYS_DATABASE_URL",
                           f"sqlite:///{self.var / 'keys' / name}.db")
        env.setdefault("GRASSROOTS_TOKENS", str(self.var / "tokens.json"))
        env.update(self.extra_env)
        env.setdefault("GRASSROOTS_SIGNING_KEY", signing_key())
        env.setdefault(PRINCIPAL_ENV, principal_key(self.var))  # gateway signs, services check
        return env

    def start_service(self, name: str) -> None:
        logs = self.var / "log"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "shared.runtime.serve", "run", "--config",
             str(config_path(name)), catalogue.get(name).cls],
            cwd=ROOT, env=self.env(name), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.api}/healthz"
        while time.monotonic() < deadline:
            self.check_children()
            with contextlib.suppress(requests.RequestException):
                reply = requests.get(url, timeout=2)
                if reply.status_code == 200 and reply.json().get("ok"):
                    return
            time.sleep(0.5)
        raise RuntimeError(f"services not ready after {timeout:.0f}s: see {self.var / 'log'}")

    def check_children(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"service {name} exited with {proc.returncode}: "
                    f"see {self.var / 'log' / name}.log"
                )

    def stop_service(self, name: str, timeout: float = 20) -> None:
        """Stop one service gracefully (SIGTERM: nameko finishes its workers), else kill it."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.say(f"{name} did not stop in time: killed")
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_service(name)
        if self.rabbit is not None:
            self.say("broker: stopping the local RabbitMQ node")
            self.rabbit.stop()
            self.rabbit = None


@contextlib.contextmanager
def single_instance() -> Any:
    """Refuse to run while another `up` holds var/up.lock."""
    VAR.mkdir(parents=True, exist_ok=True)
    lock = open(VAR / "up.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip() or "?"
        raise SystemExit(f"Grassroots is already running (pid {pid}); stop it with Ctrl-C "
                         "there first.") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    try:
        yield
    finally:
        lock.close()


def up() -> int:
    """Start broker and services, print how to use the API, stop everything on Ctrl-C."""
    with single_instance():
        platform = Platform()
        stopping = False

        def on_signal(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            platform.start_broker()
            for name in catalogue.names():
                platform.start_service(name)
            platform.say(f"services: starting {', '.join(catalogue.names())} "
                         f"(logs in {VAR / 'log'}) ...")
            platform.wait_ready()
            STATE.write_text(json.dumps({"amqp_uri": platform.amqp_uri, "api": platform.api,
                                         "pid": os.getpid()}))
            platform.say(
                f"\nGrassroots is up.\n  API:     http://{platform.api}/api/v1\n"
                f"  OpenAPI: http://{platform.api}/api/v1/openapi.json\n"
                "  Token:   .venv/bin/grassroots token create --role operator\n"
                "  Status:  .venv/bin/grassroots status\n  Demo:    .venv/bin/grassroots demo\n"
                "Press Ctrl-C to stop."
            )
            while not stopping:
                platform.check_children()
                time.sleep(0.5)
            platform.say("\nstopping ...")
            return 0
        except RuntimeError as exc:
            platform.say(f"error: {exc}")
            return 1
        finally:
            platform.stop()
            with contextlib.suppress(FileNotFoundError):
                STATE.unlink()
            platform.say("stopped.")


def running() -> dict[str, Any]:
    """What the running `up` wrote to var/up.json (broker, API address), or {}."""
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def users_file(var: Path = VAR) -> Path:
    """The local node's broker passwords, one per user (0600)."""
    return var / "broker" / "users.json"


def amqp_uri() -> str:
    """The operator's login to the running platform's broker, else AMQP_URI, else the local
    node's operator (password from var/broker/users.json)."""
    found = running().get("amqp_uri") or os.environ.get("AMQP_URI")
    if found:
        return found
    port = int(os.environ.get("GRASSROOTS_AMQP_PORT", "5672"))
    path = users_file()
    secret = brokerauth.passwords(path)["operator"] if path.exists() else ""
    return brokerauth.uri("operator", secret, HOST, port)


def api_address() -> str:
    """The API of the running platform, else GATEWAY_ADDRESS, else the default."""
    return running().get("api") or os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")


def status(out: TextIO = sys.stdout) -> int:
    """Broker reachable, each service alive, log positions, relay and view lag."""
    from shared.runtime.rpc import cluster

    uri = amqp_uri()
    if not amqp_answers(uri):
        print(f"broker: unreachable at {uri.split('@')[-1]} (is `make up` running?)", file=out)
        return 1
    print(f"broker: ok ({uri.split('@')[-1]})", file=out)
    healthy = True
    api = running().get("api")
    if api:
        try:
            health = requests.get(f"http://{api}/healthz", timeout=5)
            print(f"gateway: up  http://{api}/api/v1 (healthz {health.status_code})", file=out)
        except requests.RequestException as exc:
            print(f"gateway: DOWN ({type(exc).__name__})", file=out)
            healthy = False
    with cluster(uri, timeout=5) as rpc:
        for name in catalogue.names("write", "view"):  # the edge answers /healthz above
            try:
                report = getattr(rpc, name).status()
            except Exception as exc:  # a dead service times out: say which
                print(f"{name}: DOWN ({type(exc).__name__})", file=out)
                healthy = False
                continue
            print(f"{name}: up  {json.dumps(report, sort_keys=True)}", file=out)
    return 0 if healthy else 1
