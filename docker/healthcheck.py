"""Container health check for every Grassroots service (the image's HEALTHCHECK).

Run as `python docker/healthcheck.py` in the container, with SERVICE naming the service, from
the image's WORKDIR. Exit status 0 means healthy, 1 unhealthy; the reason goes to stdout, where
`docker inspect` shows it. Stdlib and kombu only: it must not import the services' code.

What it checks, and no more:
- the service's `nameko run` process is alive in this container;
- a service that serves HTTP (its config.yml sets WEB_SERVER_ADDRESS, like the gateway) answers
  GET /healthz with 200 and, when the body is JSON with an "ok" field, ok is true;
- any other service can reach the broker named by its config's AMQP_URI (a completed AMQP
  login, not just a TCP connect).
It does not prove that the service's consumers are attached to their queues: `grassroots
status` asks each service over RPC for that.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT = 4.0
# nameko's env substitution in config.yml: ${VAR} or ${VAR:default}.
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([^}]*))?\}")


def substitute(value: str) -> str:
    return SUBSTITUTION.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


def config_value(config: str, key: str) -> str | None:
    """A top-level scalar of config.yml with the environment substituted, or None."""
    match = re.search(rf"^{re.escape(key)}:[ \t]*(.+?)[ \t]*$", config, re.MULTILINE)
    if match is None:
        return None
    return substitute(match.group(1)).strip().strip("'\"")


def nameko_running(service: str) -> bool:
    """True when a `nameko run ... services.<service>.service` process lives here (started
    as `python -m shared.runtime.serve run ...`, nameko's runner without the deprecation noise)."""
    target = f"services.{service}.service"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        args = [a.decode(errors="replace") for a in argv if a]
        runner = any(a in ("shared.runtime.serve", "nameko") or a.endswith("/nameko") for a in args)
        if "run" in args and target in args and runner:
            return True
    return False


def http_healthy(address: str) -> str | None:
    """None when GET /healthz on the service's own address answers healthy, else why not."""
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url} unreachable: {exc}"
    if status != 200:
        return f"{url} answered {status}"
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "ok" in doc and not doc["ok"]:
        return f"{url} says not ok: {body[:200]!r}"
    return None


def broker_reachable(uri: str) -> str | None:
    """None when an AMQP login to uri completes, else why not."""
    import kombu

    try:
        with kombu.Connection(uri, connect_timeout=TIMEOUT) as conn:
            conn.ensure_connection(max_retries=0, timeout=TIMEOUT)
    except Exception as exc:  # any failure is the answer: unhealthy, and why
        return f"broker unreachable at {uri.rpartition('@')[2]}: {type(exc).__name__}: {exc}"
    return None


def check(service: str) -> str | None:
    """None when the service is healthy, else the reason it is not."""
    path = Path("services") / service / "config.yml"
    if not path.is_file():
        return f"no {path}: SERVICE={service!r} names no service"
    config = path.read_text(encoding="utf-8")
    if not nameko_running(service):
        return f"no `nameko run` process for services.{service}.service"
    address = config_value(config, "WEB_SERVER_ADDRESS")
    if address:
        return http_healthy(address)
    uri = config_value(config, "AMQP_URI")
    if not uri:
        return f"{path} sets no AMQP_URI"
    return broker_reachable(uri)


def main() -> int:
    service = os.environ.get("SERVICE", "")
    if not service:
        print("unhealthy: SERVICE is not set")
        return 1
    problem = check(service)
    if problem:
        print(f"{service} unhealthy: {problem}")
        return 1
    print(f"{service} healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
