"""A project-local RabbitMQ node, for development (`make up`) and tests, without Docker.

Nameko needs a real AMQP broker (kombu's memory transport does not carry RPC), and the
machines this project runs on have Debian's rabbitmq-server installed but no service running.
`LocalRabbit` starts a node of our own as the current user, with its data, logs, config and
Erlang cookie all under one folder, listening on 127.0.0.1 only, so that several nodes (a
`make up` one and a test one) can live side by side.

The node has no guest account: on every boot it imports the users of shared/tools/brokerauth.py (one
per service and one for the operator), with passwords kept 0600 in a users file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import kombu
from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError

from shared.tools import brokerauth
from shared.tools.brokerauth import Grant

HOST = "127.0.0.1"


def amqp_answers(uri: str, timeout: float = 2.0) -> bool:
    """True when an AMQP broker completes a handshake (and login) at uri within timeout.

    A bare TCP connect is not enough: only a completed login shows that the broker is ready
    and that the credentials in uri work.
    """
    with kombu.Connection(uri, connect_timeout=timeout) as conn:
        try:
            conn.ensure_connection(max_retries=0, timeout=timeout)
        except (OSError, KombuError, AMQPError):
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_open(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False


def _zombie(pid: int) -> bool:
    """True when pid has exited but was not reaped: a detached node's parent is init, and
    some container inits never reap, so a killed node would otherwise look alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc here, or already gone (os.kill said otherwise a moment ago)
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _find_tool(name: str) -> str:
    """Path of a RabbitMQ script (rabbitmq-server, rabbitmqctl); RuntimeError if missing.

    Debian's /usr/sbin wrappers `su` to the rabbitmq user, who cannot write to our folders,
    so the real scripts in /usr/lib/rabbitmq/bin come first.
    """
    candidates = [f"/usr/lib/rabbitmq/bin/{name}", shutil.which(name), f"/usr/sbin/{name}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} not found: install rabbitmq-server (scripts/ensure-rabbitmq.sh)")


class LocalRabbit:
    """A RabbitMQ node of our own under base_dir, on 127.0.0.1:port (AMQP) and dist_port.

    HOME is set to base_dir for the node and for rabbitmqctl, so the Erlang cookie they share
    lives there, readable by whoever runs the node, whatever the real HOME is. No plugins are
    enabled (no management port), and /etc/rabbitmq is ignored so a system config cannot add
    listeners. Users and their rights are `grants` (default: brokerauth.GRANTS), with passwords
    from `users_file` (default: base_dir/users.json, made on first use); `uri` logs in as
    `login`, `uris` maps each user to its own URI.
    """

    def __init__(
        self, base_dir: Path, port: int, node_name: str, dist_port: int | None = None, *,
        users_file: Path | None = None, grants: Mapping[str, Grant] | None = None,
        login: str = "operator",
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.port = port
        self.node = node_name if "@" in node_name else f"{node_name}@localhost"
        if dist_port is None:
            dist_port = port + 20000 if port + 20000 <= 65535 else free_port()
        self.dist_port = dist_port
        self.log_dir = self.base_dir / "log"
        self.mnesia_dir = self.base_dir / "mnesia"
        self.pid_file = self.mnesia_dir / f"{self.node}.pid"
        self.grants = dict(brokerauth.GRANTS if grants is None else grants)
        self.users_file = Path(users_file or self.base_dir / "users.json")
        self.login = login
        self._passwords: dict[str, str] | None = None
        self._launched_at: float | None = None  # when launch() last booted the node

    @property
    def passwords(self) -> dict[str, str]:
        """Each user's password, made and kept in users_file the first time it is asked."""
        if self._passwords is None:
            self._passwords = brokerauth.passwords(self.users_file, tuple(self.grants))
        return self._passwords

    @property
    def uris(self) -> dict[str, str]:
        """user -> the AMQP URI that logs in as that user."""
        return {user: brokerauth.uri(user, secret, HOST, self.port)
                for user, secret in self.passwords.items()}

    @property
    def uri(self) -> str:
        return self.uris[self.login]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.base_dir),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_dir),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base_dir / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.base_dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base_dir / "advanced.config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS=HOST,
        )
        return env

    def _prepare(self) -> None:
        """Create the folders, the empty config files and the Erlang cookie."""
        for folder in (self.base_dir, self.log_dir, self.mnesia_dir):
            folder.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").touch()
        # Imported on every boot, before any listener opens: no guest account is ever made.
        definitions = self.base_dir / "definitions.json"
        brokerauth.write_secret(definitions, json.dumps(
            brokerauth.definitions(self.passwords, self.grants), indent=2))
        (self.base_dir / "rabbitmq.conf").write_text(f"load_definitions = {definitions}\n")
        cookie = self.base_dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)

    def pid(self) -> int | None:
        """The node's OS pid from its pid file, when that process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return None if _zombie(pid) else pid

    def alive(self) -> bool:
        """True while the node's process exists: a cheap check (no login) that notices a node
        killed under `grassroots up` at once."""
        return self.pid() is not None

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `rabbitmqctl -n NODE ARGS...` against this node (same cookie, same env)."""
        cmd = [_find_tool("rabbitmqctl"), "-n", self.node, *args]
        return subprocess.run(
            cmd,
            env=self._env(),
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def running(self) -> bool:
        """True when this node's process is alive and accepts AMQP logins."""
        return self.pid() is not None and amqp_answers(self.uri)

    def start(self, timeout: float = 60) -> None:
        """Start the node detached and wait until it accepts AMQP logins (a no-op if it does)."""
        if self.running():
            return
        if _port_open(self.port):
            raise RuntimeError(f"cannot start RabbitMQ node {self.node}: port {self.port} is taken")
        self.launch()
        deadline = time.monotonic() + timeout
        while not amqp_answers(self.uri, timeout=1.0):
            if time.monotonic() > deadline:
                self.stop(timeout=15)
                raise RuntimeError(
                    f"RabbitMQ node {self.node} did not accept AMQP on port {self.port} "
                    f"within {timeout:.0f}s: see the logs in {self.log_dir}"
                )
            time.sleep(0.25)
        # A node whose data predates these users still has the guest account: remove it.
        self.ctl("delete_user", "guest")

    def launch(self) -> None:
        """Boot the node detached and return at once (it answers some seconds later): how
        `start` begins, and how `grassroots up` brings back a node that died, with its data
        and its users (imported again from users_file on boot)."""
        self._prepare()
        self._launched_at = time.monotonic()
        with open(self.log_dir / "startup.log", "ab") as out:
            # The detached node would keep pipes open: send its output to a file instead.
            done = subprocess.run(
                [_find_tool("rabbitmq-server"), "-detached"],
                env=self._env(),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmq-server failed ({done.returncode}): see {self.log_dir}")

    def _booting_pid(self, grace: float = 15) -> int | None:
        """The pid of a node launched moments ago, once it writes its pid file (about 1.5 s
        after launch): so that stopping a node mid-boot does not leave it running."""
        while self._launched_at is not None and time.monotonic() - self._launched_at < grace:
            pid = self.pid()
            if pid is not None:
                return pid
            time.sleep(0.1)
        return None

    def stop(self, timeout: float = 30) -> None:
        """Stop the node, wait until its process is gone and its port closed, then end epmd."""
        pid = self.pid() or self._booting_pid()
        self._launched_at = None
        args = ["stop", str(self.pid_file)] if pid is not None else ["stop"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ctl(*args, timeout=timeout)
        if pid is not None and self.pid() == pid:
            # rabbitmqctl failed (bad cookie, node half-booted): the node stops cleanly on TERM.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None or _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.node} still up after {timeout:.0f}s")
            time.sleep(0.1)
        # The node started the shared Erlang port mapper if none was running: end it too when
        # no node is left on it (`epmd -kill` refuses while any node is registered).
        epmd = shutil.which("epmd")
        if epmd is not None:
            subprocess.run([epmd, "-kill"], capture_output=True, check=False)

