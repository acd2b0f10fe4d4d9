"""Operator commands that act on a running platform through its services' RPC."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from shared.runtime.rpc import cluster
from shared.tools.platform import amqp_uri


def rebuild(projection: str, timeout: float = 3600, amqp: str | None = None) -> int:
    """Rebuild a projection from scratch in its service, showing progress until it is done.

    The service reads the logs again from position 1 with the same code that applies live
    events; live deliveries wait for it, so nothing is applied twice or lost.
    """
    with cluster(amqp or amqp_uri(), timeout=30) as rpc:
        service = getattr(rpc, projection)
        service.rebuild()
        deadline = time.monotonic() + timeout
        with tqdm(desc=f"rebuilding {projection}", unit="ev", file=sys.stderr,
                  disable=None) as bar:
            while time.monotonic() < deadline:
                status = service.status()
                done = sum(s["checkpoint"] for s in status["sources"].values())
                bar.total = sum(s["head"] for s in status["sources"].values())
                bar.update(done - bar.n)
                if not status["rebuilding"]:
                    break
                time.sleep(0.5)
            else:
                print(f"{projection}: still rebuilding after {timeout:.0f}s", file=sys.stderr)
                return 1
    print(f"{projection}: rebuilt, {done} events folded")
    return 0
