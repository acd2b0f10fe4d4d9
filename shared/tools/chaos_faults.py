"""The faults `grassroots chaos` injects, one small class each: prepare (before the services
start), inject, heal, and a reason when it cannot run here.

Every fault acts on what the suite started (its own broker node, proxy, PostgreSQL, folders),
never on a shared one, and names services only through the catalogue.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.runtime import catalogue
from shared.tools.broker import LocalRabbit
from shared.tools.chaos_proxy import Proxy
from shared.tools.postgres import TempPostgres

COPY_HEADER = "x-chaos-copy"  # marks the doubler's copies, so it never copies a copy
DISK_SIZE = "25%"  # of memory: what a soak's logs may grow to (tmpfs holds only what is written)
DISK_ROOM = 16 << 20  # bytes left free when the disk fault shrinks it to fill it
CLOCK_STEP = "-3600"  # libfaketime's relative offset: an hour back
RESTART_WAIT = 60.0  # how long `kill` waits for the supervisor to bring a service back
FAKETIME_FIX = Path(__file__).parent / "faketime_fix"  # its sitecustomize says why


def exits(platform: Any) -> dict[str, int]:
    """How many times each service has died so far (the supervisor's count)."""
    return {name: child.exits for name, child in platform.children.items()}


def died(before: dict[str, int], after: dict[str, int], killed: int) -> dict[str, int]:
    """Deaths between two `exits` counts beyond the `killed` each a fault did on purpose."""
    return {n: after[n] - before.get(n, 0) - killed for n in after
            if after[n] - before.get(n, 0) > killed}


@dataclass
class Stage:
    """What the faults act on, as the suite set it up."""

    work: Path
    platform: Any  # shared.tools.platform.Platform
    rabbit: LocalRabbit
    proxy: Proxy
    harness_uri: str  # the suite's own broker login (every right), straight to the node
    postgres: TempPostgres | None = None
    say: Callable[[str], None] = print
    down: float = 3.0  # how long a fault is held before it is healed
    duplicate_posts: threading.Event = field(default_factory=threading.Event)


class Fault:
    name = ""
    summary = ""
    kills = False  # whether it kills every service once (any other death is a failure)

    def unavailable(self, stage: Stage) -> str | None:
        """Why this fault cannot run here (None: it can)."""
        return None

    def prepare(self, work: Path, env: dict[str, str], database: str) -> None:
        """Before the services start: set up what the fault needs in their environment."""

    def inject(self, stage: Stage) -> None:
        raise NotImplementedError

    def heal(self, stage: Stage) -> None:
        """Undo the fault (after `stage.down` seconds)."""

    def teardown(self) -> None:
        """After the services stopped: release what `prepare` took."""


class Kill(Fault):
    name, summary = "kill", "kill -9 of every service in turn; the supervisor restarts it"
    kills = True

    def inject(self, stage: Stage) -> None:
        for name in catalogue.names():
            old = stage.platform.procs[name]
            os.kill(old.pid, signal.SIGKILL)
            stage.say(f"  killed {name} (pid {old.pid})")
            deadline = time.monotonic() + RESTART_WAIT
            while time.monotonic() < deadline:
                new = stage.platform.procs.get(name)
                if new is not None and new is not old and new.poll() is None:
                    break
                time.sleep(0.2)
            else:
                stage.say(f"  {name} was not restarted within {RESTART_WAIT:.0f}s")
            time.sleep(stage.down / 2)  # let it come up under load before the next one


class Broker(Fault):
    name, summary = "broker", "the broker's app stopped, then started (rabbitmqctl)"

    def inject(self, stage: Stage) -> None:
        stage.rabbit.ctl("stop_app")

    def heal(self, stage: Stage) -> None:
        done = stage.rabbit.ctl("start_app")
        if done.returncode != 0:
            raise RuntimeError(f"start_app failed: {done.stdout}{done.stderr}")


class Cut(Fault):
    name, summary = "cut", "every broker connection cut mid-frame; new ones refused a while"

    def inject(self, stage: Stage) -> None:
        stage.say(f"  cut {stage.proxy.cut()} connections")

    def heal(self, stage: Stage) -> None:
        stage.proxy.restore()


class Duplicate(Fault):
    """Every event published twice with its message id (a consumer on each write service's
    exchange publishes a copy), and every command posted twice with its Idempotency-Key."""

    name, summary = "duplicate", "every event delivered twice; every command posted twice"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.copies = 0

    def inject(self, stage: Stage) -> None:
        self._stop.clear()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._double, args=(stage.harness_uri, ready),
                                        name="chaos-doubler", daemon=True)
        self._thread.start()
        ready.wait(10)
        stage.duplicate_posts.set()

    def _double(self, uri: str, ready: threading.Event) -> None:
        import kombu

        from shared.runtime.relay import event_exchange

        with kombu.Connection(uri) as conn:
            producer = kombu.Producer(conn.channel())
            queues = [kombu.Queue(f"chaos-doubler-{name}", event_exchange(name), "#",
                                  exclusive=True, auto_delete=True)
                      for name in catalogue.names("write")]

            def on_message(body: Any, message: Any) -> None:
                headers = dict(message.headers or {})
                if COPY_HEADER not in headers:
                    producer.publish(
                        message.body, exchange=message.delivery_info["exchange"],
                        routing_key=message.delivery_info["routing_key"],
                        content_type=message.content_type,
                        content_encoding=message.content_encoding,
                        message_id=message.properties.get("message_id"),
                        headers={**headers, COPY_HEADER: 1}, delivery_mode=2)
                    self.copies += 1
                message.ack()

            with kombu.Consumer(conn, queues, callbacks=[on_message], accept=None):
                ready.set()
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    def heal(self, stage: Stage) -> None:
        stage.duplicate_posts.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        stage.say(f"  {self.copies} events published twice")


class Postgres(Fault):
    name, summary = "postgres", "PostgreSQL crashed (pg_ctl -m immediate), then started"

    def unavailable(self, stage: Stage) -> str | None:
        return None if stage.postgres else "needs --database postgres"

    def inject(self, stage: Stage) -> None:
        assert stage.postgres is not None
        stage.postgres.stop_server("immediate")

    def heal(self, stage: Stage) -> None:
        assert stage.postgres is not None
        stage.postgres.start_server()


class Disk(Fault):
    """The write services' logs on a tmpfs the suite mounts. To inject, it is shrunk to what
    the logs use plus DISK_ROOM and a file fills that until writes fail; to heal, the file is
    deleted and the size restored. (It was a fixed 128 MB, which an hour-long soak's logs
    filled by themselves after 25 minutes: every write failed from then on.)"""

    name, summary = "disk", "the logs' filesystem filled until writes fail, then freed"

    def __init__(self) -> None:
        self.mount: Path | None = None
        self.why_not: str | None = None

    def prepare(self, work: Path, env: dict[str, str], database: str) -> None:
        if database != "sqlite":
            self.why_not = "the logs live in PostgreSQL: run it with --database sqlite"
            return
        if os.geteuid() != 0:
            self.why_not = "mounting a tmpfs needs root"
            return
        folder = work / "disk"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700",
                               "tmpfs", str(folder)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            self.why_not = f"mount -t tmpfs failed: {done.stderr.strip()}"
            return
        self.mount = folder
        for name in catalogue.names("write"):
            env[f"{name.upper()}_DATABASE_URL"] = f"sqlite:///{folder / name}.db"

    def unavailable(self, stage: Stage) -> str | None:
        return self.why_not

    def _resize(self, size: str) -> None:
        assert self.mount is not None
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.mount)],
                       capture_output=True, text=True, check=True)

    def inject(self, stage: Stage) -> None:
        assert self.mount is not None
        fs = os.statvfs(self.mount)
        self._resize(f"{((fs.f_blocks - fs.f_bfree) * fs.f_frsize + DISK_ROOM) >> 10}k")
        block = b"\0" * (1 << 20)
        with open(self.mount / "filler", "wb") as out:
            try:
                while True:
                    out.write(block)
                    out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        stage.say(f"  {self.mount.name}: full")

    def heal(self, stage: Stage) -> None:
        assert self.mount is not None
        (self.mount / "filler").unlink()
        self._resize(DISK_SIZE)

    def teardown(self) -> None:
        if self.mount is not None:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, check=False)
            self.mount = None


class Clock(Fault):
    """The services' wall clock stepped back an hour by libfaketime (Debian's `faketime`),
    preloaded into every service with its offset read from a file on each call; monotonic
    clocks (timeouts, backoff) keep real time. With it goes `faketime_fix` (a sitecustomize
    that mends a libfaketime bug which made every service die at every broker fault)."""

    name, summary = "clock", "the services' wall clock stepped back an hour"

    def __init__(self) -> None:
        self.file: Path | None = None

    def prepare(self, work: Path, env: dict[str, str], database: str) -> None:
        found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
        if not found:
            return
        self.file = work / "faketime"
        self.file.write_text("+0\n")
        env.update(LD_PRELOAD=found[0], FAKETIME_TIMESTAMP_FILE=str(self.file),
                   FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [
                       str(FAKETIME_FIX), env.get("PYTHONPATH") or os.environ.get("PYTHONPATH")])))

    def unavailable(self, stage: Stage) -> str | None:
        return None if self.file else "libfaketime is missing: scripts/ensure-faketime.sh"

    def inject(self, stage: Stage) -> None:
        assert self.file is not None
        self.file.write_text(f"{CLOCK_STEP}\n")

    def heal(self, stage: Stage) -> None:
        assert self.file is not None
        self.file.write_text("+0\n")


FAULTS: dict[str, type[Fault]] = {
    f.name: f for f in (Kill, Broker, Cut, Duplicate, Postgres, Disk, Clock)
}
