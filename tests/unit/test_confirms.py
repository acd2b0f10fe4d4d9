"""The relay's publisher confirms (shared.runtime.relay.Confirms), read for a whole batch: a
batch counts as published only when the broker has confirmed every one of its messages, one
by one or many at once; a nack, or confirms that stop coming, fail the whole batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from amqp.exceptions import MessageNacked

from shared.runtime.relay import Confirms


class Channel:
    """What `Confirms` uses of a py-amqp channel: confirm mode and its callbacks."""

    def __init__(self) -> None:
        self.events: dict[str, set[Callable[..., None]]] = defaultdict(set)
        self.confirming = False

    def confirm_select(self) -> None:
        self.confirming = True


class Broker:
    """A connection whose `drain_events` delivers the scripted confirms, one frame a call,
    and then times out as a silent broker would."""

    def __init__(self, channel: Channel, frames: list[tuple[str, int, bool]]) -> None:
        self.channel, self.frames, self.drained = channel, list(frames), 0

    def drain_events(self, timeout: float) -> None:
        self.drained += 1
        if not self.frames:
            raise TimeoutError("timed out")
        kind, tag, multiple = self.frames.pop(0)
        for callback in list(self.channel.events[f"basic_{kind}"]):
            callback(tag, multiple)


def _batch(size: int, frames: list[tuple[str, int, bool]]) -> tuple[Confirms, Any]:
    channel = Channel()
    confirms = Confirms(channel)
    assert channel.confirming
    for _ in range(size):
        confirms.published()
    return confirms, Broker(channel, frames)


def test_a_batch_confirmed_at_once_is_read_in_one_frame() -> None:
    confirms, broker = _batch(500, [("ack", 500, True)])
    confirms.wait(broker, 1.0)
    assert broker.drained == 1 and not confirms.unconfirmed


def test_confirms_one_by_one_and_in_runs_all_count() -> None:
    confirms, broker = _batch(5, [("ack", 2, False), ("ack", 1, False), ("ack", 4, True),
                                  ("ack", 5, False)])
    confirms.wait(broker, 1.0)
    assert broker.drained == 4


def test_a_missing_confirm_is_waited_for_until_the_deadline() -> None:
    confirms, broker = _batch(3, [("ack", 1, False), ("ack", 3, False)])
    with pytest.raises(TimeoutError, match="1 publisher confirms not back in 0.05s"):
        confirms.wait(broker, 0.05)


def test_a_nack_fails_the_batch() -> None:
    confirms, broker = _batch(3, [("ack", 1, False), ("nack", 2, False), ("ack", 3, False)])
    with pytest.raises(MessageNacked):
        confirms.wait(broker, 1.0)


def test_the_next_batch_on_the_channel_counts_on_from_the_last() -> None:
    """Delivery tags run on across batches of one channel: the second batch is 3..4."""
    confirms, broker = _batch(2, [("ack", 2, True)])
    confirms.wait(broker, 1.0)
    confirms.published()
    confirms.published()
    broker.frames = [("ack", 3, False), ("ack", 4, False)]
    confirms.wait(broker, 1.0)
    assert confirms.sent == 4 and not confirms.unconfirmed
