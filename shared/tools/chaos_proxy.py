"""A TCP proxy between the services and the broker that `grassroots chaos` controls.

Cutting a connection at the broker (`rabbitmqctl close_connection`) is polite: the broker says
goodbye in AMQP first. A network that fails mid-frame says nothing, which is what `cut` makes:
each live connection forwards half of its next chunk (a publish or an RPC reply in flight) and
is then closed both ways, while new connections are refused until `restore()`.

One thread per direction per connection, with blocking sockets: it works the same with OS
threads (the CLI) and with eventlet's green threads (the tests patch sockets).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from shared.tools.broker import HOST, free_port

CHUNK = 65536
CUT_GRACE = 0.5  # seconds a cut waits for traffic to cut in the middle before closing anyway


class _Link:
    """One client connection and its connection to the broker. Other threads only shut
    the sockets down (which wakes the pumps); the last pump to finish closes them, so a
    socket's descriptor is never freed under a thread still reading it."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.cutting = threading.Event()
        self.closed = threading.Event()
        self._pumps = 2
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def pump_done(self) -> None:
        self.shutdown()
        with self._lock:
            self._pumps -= 1
            last = self._pumps == 0
        if last:
            for sock in (self.client, self.upstream):
                sock.close()


class Proxy:
    """Listens on 127.0.0.1:`port` (a free one by default) and forwards to `target_port`."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.links: set[_Link] = set()
        self.refusing = threading.Event()
        self.cuts = 0  # connections cut so far, mid-chunk or at the grace's end
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = socket.create_server((HOST, self.port))
        self._server.settimeout(0.5)  # so that stop() is seen
        self._thread = threading.Thread(target=self._accept, name="chaos-proxy", daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self.links.add(link)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, src, dst), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not link.closed.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                if link.cutting.is_set():  # mid-publish or mid-reply: half a frame, then gone
                    dst.sendall(data[: max(1, len(data) // 2)])
                    break
                dst.sendall(data)
        except (OSError, EOFError):  # eventlet's sockets raise EOFError once shut down
            pass
        with self._lock:
            if link.cutting.is_set() and not link.closed.is_set():
                self.cuts += 1
            self.links.discard(link)
            link.shutdown()
        link.pump_done()

    def cut(self) -> int:
        """Refuse new connections and cut every live one mid-chunk (or after CUT_GRACE when
        it is idle). Returns how many connections were live."""
        self.refusing.set()
        with self._lock:
            live = list(self.links)
        for link in live:
            link.cutting.set()
        deadline = time.monotonic() + CUT_GRACE
        while time.monotonic() < deadline and any(not link.closed.is_set() for link in live):
            time.sleep(0.02)
        for link in live:
            if not link.closed.is_set():
                with self._lock:
                    self.cuts += 1
                    self.links.discard(link)
                link.shutdown()
        return len(live)

    def restore(self) -> None:
        """Accept connections again."""
        self.refusing.clear()

    def stop(self) -> None:
        """Stop accepting, then close: the accept loop is let go first (it wakes within its
        timeout), because closing a socket another thread waits on leaves that wait behind
        under eventlet, where it collides with the next socket given the same descriptor."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            live = list(self.links)
            self.links.clear()
        for link in live:
            link.shutdown()
