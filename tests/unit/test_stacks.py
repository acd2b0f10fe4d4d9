"""SIGUSR1 lists the green threads: a thread parked in a wait shows where it waits, and a heap
holding dead weak proxies (as a service's does) does not make the handler raise."""

from __future__ import annotations

import logging
import os
import signal
import weakref

import eventlet
import pytest

from shared.runtime import stacks


class _Thing:
    pass


def parked_here_waiting(event: eventlet.Event) -> None:
    event.wait()


def test_sigusr1_logs_every_parked_green_thread(caplog: pytest.LogCaptureFixture) -> None:
    event = eventlet.Event()
    thread = eventlet.spawn(parked_here_waiting, event)
    eventlet.sleep(0)  # let it park
    thing = _Thing()
    dead = weakref.proxy(thing)
    del thing  # a proxy to nothing: asking it anything raises ReferenceError
    previous = signal.getsignal(signal.SIGUSR1)
    stacks.install()
    try:
        with caplog.at_level(logging.WARNING, logger=stacks.__name__):
            os.kill(os.getpid(), signal.SIGUSR1)
            eventlet.sleep(0)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        event.send(None)
        thread.wait()
    assert dead is not None
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "green threads on SIGUSR1" in said
    assert "parked_here_waiting" in said
    assert "could not list" not in said
