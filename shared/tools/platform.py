"""`grassroots up` and `grassroots status`: run every service locally and report on them.

`up` keeps all state under var/: SQLite databases, the broker's data (when it starts one),
logs, the signing key and the API tokens. A lock file stops a second `up` from starting the
same services twice on the same databases. `up` supervises what it started (see
shared/tools/supervisor.py for the restart rules) and keeps var/up.json current for `status`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
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
from shared.tools.supervisor import Child, RestartPolicy, exit_text, now_text, summary

STATE = VAR / "up.json"
BROKER_BOOT_SECONDS = 60.0  # a restarted local node that does not answer by then is broken
BROKER_CHECK_SECONDS = 5.0  # how often an outside broker is asked whether it answers
STOP_SECONDS = 10.0  # a service still running this long after SIGTERM is stuck: killed
# Libraries' notices about their own deprecations are not for operators to read.
QUIET = "ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning"


def database_url(service: str, var: Path = VAR) -> str:
    """Where a service's database is: `<SERVICE>_DATABASE_URL`, else var/<service>.db."""
    return os.environ.get(f"{service.upper()}_DATABASE_URL") or f"sqlite:///{var / service}.db"


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
    """The processes `up` started, so that Ctrl-C stops exactly those, and their supervisor.

    `watch()` may run in a thread of its own (the chaos suite's) while another stops the
    platform: a lock keeps the two apart, and `stopping` ends supervision first."""

    def __init__(
        self, out: TextIO = sys.stdout, var: Path = VAR, env: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.out = out
        self.var = var
        self.extra_env = env or {}
        self.policy = policy or RestartPolicy()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}  # the running services
        self.children: dict[str, Child] = {}  # every service started, running or not
        self.rabbit: LocalRabbit | None = None  # our own node, which we restart if it dies
        self.broker = Child()
        self.broker_down = False  # the broker (ours or not) does not answer
        self._broker_booting: float | None = None  # when we relaunched our node
        self._broker_checked = 0.0  # when an outside broker was last asked
        self.amqp_uri = ""  # the operator's login: status, rebuild
        self.service_uris: dict[str, str] = {}  # each service's own login
        self.api = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
        self.stopping = threading.Event()
        self._lock = threading.RLock()

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def note(self, name: str, line: str) -> None:
        """A supervision event: one line to the output and to var/log/<name>.log."""
        self.say(line)
        logs = self.var / "log"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "a") as log:
            log.write(f"{now_text()} grassroots up: {line}\n")

    @property
    def state_file(self) -> Path:
        return self.var / STATE.name

    def write_state(self) -> None:
        """var/up.json as it stands now, replaced whole (temp file, then rename), 0600: it
        holds the operator's broker login."""
        state = {"pid": os.getpid(), "amqp_uri": self.amqp_uri, "api": self.api,
                 "broker": {"local": self.rabbit is not None, "down": self.broker_down,
                            **self.broker.state()},
                 "services": {name: child.state() for name, child in self.children.items()}}
        self.var.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".json.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        os.replace(temp, self.state_file)

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
            self.broker.started_now(rabbit.pid(), time.monotonic())
            return
        self.say(f"broker: starting a local RabbitMQ node on 127.0.0.1:{port} ...")
        rabbit.start()
        self.rabbit, self.amqp_uri = rabbit, rabbit.uri
        self.broker.started_now(rabbit.pid(), time.monotonic())

    def env(self, service: str | None = None) -> dict[str, str]:
        """The environment of a service's process: its own broker login among the rest."""
        env = dict(os.environ)
        env.update(AMQP_URI=self.service_uris.get(service or "", self.amqp_uri),
                   GATEWAY_ADDRESS=self.api, PYTHONWARNINGS=QUIET)
        for name in catalogue.names():  # every database in var/ unless the operator names one
            env[f"{name.upper()}_DATABASE_URL"] = database_url(name, self.var)
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
        with self._lock, open(logs / f"{name}.log", "ab") as out:  # the child keeps its copy
            proc = self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "shared.runtime.serve", "run", "--config",
                 str(config_path(name)), catalogue.get(name).cls],
                cwd=ROOT, env=self.env(name), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.children.setdefault(name, Child()).started_now(proc.pid, time.monotonic())
            self.write_state()

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /healthz says every service answers. A service that dies meanwhile fails
        this at once, naming its log: at start-up a death is a fault to fix (configuration,
        database), which restarting would only repeat. Returns early once `stopping` is set."""
        deadline = time.monotonic() + timeout
        url = f"http://{self.api}/healthz"
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.check_children()
            with contextlib.suppress(requests.RequestException):
                reply = requests.get(url, timeout=2)
                if reply.status_code == 200 and reply.json().get("ok"):
                    return
            time.sleep(0.5)
        if not self.stopping.is_set():
            raise RuntimeError(f"services not ready after {timeout:.0f}s: see {self.var / 'log'}")

    def check_children(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"service {name} exited with {proc.returncode}: "
                    f"see {self.var / 'log' / name}.log"
                )

    def stop_service(self, name: str, timeout: float = STOP_SECONDS) -> None:
        """Stop one service gracefully, else kill it; a service stopped so is not restarted."""
        self.stop_services([name], timeout)

    def stop_services(self, names: list[str], timeout: float = STOP_SECONDS) -> None:
        """SIGTERM to all of them at once (nameko finishes what its workers can within
        shared/runtime/stopping.WORKER_GRACE), then kill any still running `timeout` seconds
        later. All at once, because one at a time added their stops up, and a view stopped
        after the logs it reads waited for them in vain."""
        with self._lock:
            procs = {name: self.procs.pop(name) for name in names}
            for name, proc in procs.items():
                self.children[name].stopped()
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for name, proc in procs.items():
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say(f"{name} did not stop in time: killed")
                    proc.kill()
                    proc.wait()
            self.write_state()

    def stop(self) -> None:
        """Stop everything started, services waiting to restart and the broker node
        included (also mid-boot), then remove var/up.json."""
        self.stopping.set()  # a watch() in another thread restarts nothing from now on
        with self._lock:
            self.stop_services(list(self.procs))
            for child in self.children.values():
                child.stopped()
            if self.rabbit is not None:
                self.say("broker: stopping the local RabbitMQ node")
                self.rabbit.stop()
                self.rabbit = None
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()

    def watch(self) -> None:
        """One pass of supervision, without waiting (`up` calls it every 0.5 s): a service
        that died is logged and, after its backoff, started again; our broker node is
        relaunched if it died; while the broker does not answer, dead services wait for it
        and their deaths are not counted as a crash loop. RuntimeError on a crash loop, or
        when our node does not come back within BROKER_BOOT_SECONDS."""
        with self._lock:
            if self.stopping.is_set():
                return
            now = time.monotonic()
            dead = {name: proc.returncode for name, proc in self.procs.items()
                    if proc.poll() is not None}
            broker_ok = self._watch_broker(now, force=bool(dead))
            for name, returncode in dead.items():
                self._died(name, returncode, now, counts=broker_ok)
            for name, child in self.children.items():
                if broker_ok and child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    self.start_service(name)
                    self.note(name, f"{name}: restarted (restart {child.restarts}, "
                                    f"pid {child.pid})")

    def _died(self, name: str, returncode: int, now: float, counts: bool) -> None:
        del self.procs[name]
        child = self.children[name]
        delay = child.died(returncode, now, self.policy, counts)
        self.write_state()
        uptime = child.last_exit["uptime_s"] if child.last_exit else 0
        if child.crash_looping(self.policy):
            self.note(name, f"{name}: {exit_text(returncode)} after {uptime:g}s up; "
                            "a crash loop: not restarting")
            raise RuntimeError(
                f"service {name} died {len(child.deaths)} times within "
                f"{self.policy.window:g}s (a crash loop; last: {exit_text(returncode)}): "
                f"see {self.var / 'log' / name}.log")
        waits = " once the broker is back" if not counts else ""
        self.note(name, f"{name}: {exit_text(returncode)} after {uptime:g}s up; "
                        f"restart {child.restarts + 1} in {delay:g}s{waits}")

    def _watch_broker(self, now: float, force: bool) -> bool:
        """Whether the broker answers, as far as a cheap check tells; our node is relaunched
        when its process is gone (with its data and users), an outside one only reported."""
        if self.rabbit is None:
            return self._watch_outside_broker(now, force)
        if self._broker_booting is None and self.broker.restart_at is None:
            if self.rabbit.alive():
                return True
            self.broker.died(None, now, self.policy)
            self.broker_down = True
            self.write_state()
            if self.broker.crash_looping(self.policy):
                raise RuntimeError(f"the local RabbitMQ node died {len(self.broker.deaths)} "
                                   f"times within {self.policy.window:g}s: see "
                                   f"{self.rabbit.log_dir}")
            self.note("broker", f"broker: the local RabbitMQ node is gone; restart "
                                f"{self.broker.restarts + 1} in {self.broker.delay:g}s")
            return False
        if self._broker_booting is None:
            if self.broker.restart_at is not None and now >= self.broker.restart_at:
                self.broker.restarts += 1
                self.rabbit.launch()
                self._broker_booting, self.broker.restart_at = now, None
                self.write_state()
            return False
        if self.rabbit.alive() and amqp_answers(self.rabbit.uri, timeout=0.5):
            self.broker.started_now(self.rabbit.pid(), now)
            self.broker_down, self._broker_booting = False, None
            self.write_state()
            self.note("broker", f"broker: the local RabbitMQ node is back (restart "
                                f"{self.broker.restarts})")
            return True
        if now - self._broker_booting > BROKER_BOOT_SECONDS:
            raise RuntimeError(f"the local RabbitMQ node did not come back within "
                               f"{BROKER_BOOT_SECONDS:g}s: see {self.rabbit.log_dir}")
        return False

    def _watch_outside_broker(self, now: float, force: bool) -> bool:
        """An outside broker is not ours to restart: say when it stops and starts answering."""
        if force or now - self._broker_checked >= BROKER_CHECK_SECONDS:
            self._broker_checked = now
            down = not amqp_answers(self.amqp_uri, timeout=1.0)
            if down != self.broker_down:
                self.broker_down = down
                self.write_state()
                where = self.amqp_uri.split("@")[-1]
                self.note("broker", f"broker: the outside broker at {where} does not answer "
                                    "(not ours to restart; dead services wait for it)"
                          if down else f"broker: the outside broker at {where} answers again")
        return not self.broker_down


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
    """Start broker and services, print how to use the API, restart what dies, stop
    everything on Ctrl-C or SIGTERM; exit non-zero after a crash loop."""
    with single_instance():
        platform = Platform()

        def on_signal(signum: int, _frame: Any) -> None:
            platform.stopping.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            platform.start_broker()
            for name in catalogue.names():
                platform.start_service(name)
            platform.say(f"services: starting {', '.join(catalogue.names())} "
                         f"(logs in {VAR / 'log'}) ...")
            platform.wait_ready()
            platform.say(
                f"\nGrassroots is up.\n  API:     http://{platform.api}/api/v1\n"
                f"  OpenAPI: http://{platform.api}/api/v1/openapi.json\n"
                "  Token:   .venv/bin/grassroots token create --role operator\n"
                "  Status:  .venv/bin/grassroots status\n  Demo:    .venv/bin/grassroots demo\n"
                "Press Ctrl-C to stop."
            )
            while not platform.stopping.is_set():
                platform.watch()
                time.sleep(0.5)
            platform.say("\nstopping ...")
            return 0
        except RuntimeError as exc:
            platform.say(f"error: {exc}")
            return 1
        finally:
            platform.stop()
            platform.say("stopped.")


def running(var: Path = VAR) -> dict[str, Any]:
    """What the running `up` keeps in var/up.json (broker, API address, each service's pid,
    restarts and last exit), or {}."""
    path = var / STATE.name
    return json.loads(path.read_text()) if path.exists() else {}


def users_file(var: Path = VAR) -> Path:
    """The local node's broker passwords, one per user (0600)."""
    return var / "broker" / "users.json"


def amqp_uri(var: Path = VAR) -> str:
    """The operator's login to the running platform's broker, else AMQP_URI, else the local
    node's operator (password from var/broker/users.json)."""
    found = running(var).get("amqp_uri") or os.environ.get("AMQP_URI")
    if found:
        return found
    port = int(os.environ.get("GRASSROOTS_AMQP_PORT", "5672"))
    path = users_file(var)
    secret = brokerauth.passwords(path)["operator"] if path.exists() else ""
    return brokerauth.uri("operator", secret, HOST, port)


def api_address() -> str:
    """The API of the running platform, else GATEWAY_ADDRESS, else the default."""
    return running().get("api") or os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")


def status(out: TextIO = sys.stdout, var: Path = VAR) -> int:
    """Broker reachable, each service alive, log positions, relay and view lag, and while `up`
    supervises them each one's restarts and last exit; last, what is down (then exit 1)."""
    from shared.runtime.rpc import cluster

    state = running(var)
    supervised: dict[str, Any] = {"broker": state.get("broker", {}), **state.get("services", {})}

    def show(name: str, line: str) -> None:
        known = supervised.get(name)
        print(f"{line}  [{summary(known)}]" if known else line, file=out)

    uri = amqp_uri(var)
    down: list[str] = []
    if amqp_answers(uri):
        show("broker", f"broker: ok ({uri.split('@')[-1]})")
    else:
        show("broker", f"broker: unreachable at {uri.split('@')[-1]} (is `make up` running?)")
        down.append("broker")
    api = state.get("api")
    if api:
        try:
            health = requests.get(f"http://{api}/healthz", timeout=5)
            show("gateway", f"gateway: up  http://{api}/api/v1 (healthz {health.status_code})")
        except requests.RequestException as exc:
            show("gateway", f"gateway: DOWN ({type(exc).__name__})")
            down.append("gateway")
    asked = catalogue.names("write", "view")  # the edge answers /healthz above
    if down[:1] == ["broker"]:
        for name in asked:
            show(name, f"{name}: not asked (no broker)")
    else:
        with cluster(uri, timeout=5) as rpc:
            for name in asked:
                try:
                    report = getattr(rpc, name).status()
                except Exception as exc:  # a dead service times out: say which
                    show(name, f"{name}: DOWN ({type(exc).__name__})")
                    down.append(name)
                    continue
                show(name, f"{name}: up  {json.dumps(report, sort_keys=True)}")
    if down:
        print(f"down: {', '.join(down)}", file=out)
    return 1 if down else 0
