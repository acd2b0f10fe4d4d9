"""Value types of the event log: what callers append and what they read back."""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

GENESIS_HASH = "0" * 64
SPECVERSION = "1.0"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event a command decided on, not yet in the log.

    `personal` names dotted paths into `data` that hold a data subject's personal data; they are
    encrypted with `subject`'s key before the record is hashed, so erasing the key erases them.
    """

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    occurred_at: datetime | None = None
    subject: str | None = None
    personal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.type or "." not in self.type:
            raise ValueError(f"event type {self.type!r} must be dotted, e.g. 'visit.recorded'")
        if not isinstance(self.data, dict):
            raise TypeError(f"event data of {self.type!r} must be a dict")
        if self.personal and not self.subject:
            raise ValueError(f"{self.type!r} marks personal fields but names no subject")
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise ValueError(f"occurred_at of {self.type!r} must be timezone-aware")


class Lazy:
    """Data not yet decoded (and its personal fields not yet decrypted): a record read from
    the log holds one in its `data` slot and opens it the first time `data` or `redacted` is
    asked for.

    Most readers never look at a resident's name, and many not at the data at all (a fold
    that wants only some types, the relay's position, verify): building each record's nested
    dicts was four fifths of a read, and an AES-GCM decryption per personal field most of the
    rest. Two threads opening the same record at once may both decode it: the data is equal,
    the first to finish is kept.
    """

    __slots__ = ()

    def open(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The plain data and the paths that could not be decrypted (redacted as None)."""
        raise NotImplementedError

    def redactions(self) -> tuple[str, ...]:
        """What `open()[1]` says, without decoding data that has nothing to decrypt."""
        return self.open()[1]

    def withheld(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The data with every personal field None, and the paths known to be redacted,
        without decrypting anything (what `to_cloudevent(personal=False)` sends)."""
        raise NotImplementedError

    def raw(self) -> Any:
        """The data's stored JSON (a buffer msgspec decodes), personal fields still sealed: a
        fold that needs a few plain fields decodes only those, with a typed schema (the
        compliance view's rebuild spent half its time decoding and decrypting the rest)."""
        return self._raw  # type: ignore[attr-defined]  # every kind keeps it in `_raw`

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Lazy):
            other = other.open()[0]
        return self.open()[0] == other

    __hash__ = None  # type: ignore[assignment]  # like the dict it stands for

    def __reduce__(self) -> tuple[Any, ...]:  # a pickled or copied record carries plain data
        return dict, (self.open()[0],)


class Record(NamedTuple):
    """One committed event as readers see it (decrypted, redacted if forgotten, upcast).

    A NamedTuple rather than a frozen dataclass: reads build hundreds of thousands a second.
    A record read from the log may hold its data sealed (a `Lazy`): `data` and `redacted`
    decrypt it on first use; indexing the tuple directly (`record[5]`) sees the `Lazy`.
    """

    position: int
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    event_id: str
    command_id: str | None
    actor: str | None
    correlation_id: str | None
    causation_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: str
    hash: str
    source: str
    subject: str | None = None
    personal: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()

    def plain(self) -> dict[str, Any]:
        """The data with its personal fields withheld (None), decrypting nothing: for readers
        of plain fields only (a command's answer needs the resident's id, not their name)."""
        if not self.personal:
            return self.data
        sealed = _DATA(self)
        if isinstance(sealed, Lazy):  # decoded as stored, sealed fields then withheld
            return _withhold(msgspec.json.decode(sealed.raw()), self.personal)
        return _withhold(sealed, self.personal)

    def to_cloudevent(self, *, personal: bool = True) -> dict[str, Any]:
        """CloudEvents 1.0 structured form; absent optional attributes are left out.

        With `personal=False` the personal fields are withheld (None): what the relay sends,
        so that no copy of a resident's data outlives the erasure of their key.
        """
        redacted = self.redacted if personal else ()
        sealed = _DATA(self)
        if personal or not self.personal:
            data = self.data
        elif isinstance(sealed, Lazy):  # withheld without decrypting anything
            data, redacted = sealed.withheld()
        else:
            data, redacted = _withhold(sealed, self.personal), _REDACTED(self)
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.event_id,
            "source": self.source,
            "type": self.type,
            "subject": self.stream,
            "time": self.occurred_at.isoformat(),
            "datacontenttype": "application/json",
            "data": data,
            "sequence": str(self.position),
            "streamversion": self.version,
            "schemaversion": self.schema_version,
            "recordedtime": self.recorded_at.isoformat(),
            "hash": self.hash,
            "prevhash": self.prev_hash,
        }
        optional = {
            "correlationid": self.correlation_id,
            "causationid": self.causation_id,
            "commandid": self.command_id,
            "actor": self.actor,
            "datasubject": self.subject,
        }
        event.update({k: v for k, v in optional.items() if v is not None})
        if self.personal:
            event["personaldata"] = ",".join(self.personal)
        if redacted:
            event["redacted"] = ",".join(redacted)
        return event

    @classmethod
    def from_cloudevent(cls, event: dict[str, Any]) -> Record:
        """Inverse of `to_cloudevent`, for consumers fed from the bus or over RPC."""

        def split(key: str) -> tuple[str, ...]:
            return tuple(p for p in event.get(key, "").split(",") if p)

        return cls(
            position=int(event["sequence"]),
            stream=event["subject"],
            version=int(event["streamversion"]),
            type=event["type"],
            schema_version=int(event["schemaversion"]),
            data=event["data"],
            event_id=event["id"],
            command_id=event.get("commandid"),
            actor=event.get("actor"),
            correlation_id=event.get("correlationid"),
            causation_id=event.get("causationid"),
            occurred_at=datetime.fromisoformat(event["time"]),
            recorded_at=datetime.fromisoformat(event["recordedtime"]),
            prev_hash=event["prevhash"],
            hash=event["hash"],
            source=event["source"],
            subject=event.get("datasubject"),
            personal=split("personaldata"),
            redacted=split("redacted"),
        )


# the tuple's own slots, read past the properties set below
_DATA = operator.itemgetter(Record._fields.index("data"))
_REDACTED = operator.itemgetter(Record._fields.index("redacted"))


def _data(record: Record) -> dict[str, Any]:
    value = _DATA(record)
    return value if value.__class__ is dict or not isinstance(value, Lazy) else value.open()[0]


def _redacted(record: Record) -> tuple[str, ...]:
    value = _DATA(record)
    return value.redactions() if isinstance(value, Lazy) else _REDACTED(record)


def _asdict(record: Record) -> dict[str, Any]:
    return {**dict(zip(record._fields, record, strict=True)), "data": record.data,
            "redacted": record.redacted}


def _plain(record: object) -> object:
    """The record as a tuple with its data opened (itself if nothing is sealed)."""
    if isinstance(record, Record) and isinstance(_DATA(record), Lazy):
        data, redacted = _DATA(record).open()
        return (*record[:5], data, *record[6:-1], redacted)
    return record


_TUPLE_EQ: Any = tuple.__eq__


def _eq(record: Record, other: object) -> bool:
    if not isinstance(other, tuple):
        return NotImplemented
    return bool(_TUPLE_EQ(_plain(record), _plain(other)))


def _ne(record: Record, other: object) -> bool:
    equal = _eq(record, other)
    return equal if equal is NotImplemented else not equal


# Set after the class is made: a NamedTuple's body may not replace its fields' getters.
Record.__eq__ = _eq  # type: ignore[method-assign, assignment]
Record.__ne__ = _ne  # type: ignore[method-assign, assignment]
Record.data = property(_data, doc="The event's data, decrypted on first use.")  # type: ignore
Record.redacted = property(  # type: ignore
    _redacted, doc="Personal paths that could not be decrypted (the key was erased).")
Record._asdict = _asdict  # type: ignore[method-assign, assignment]


def _withhold(data: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for path in paths:
        *head, leaf = path.split(".")
        node: Any = out
        for part in head:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = None
    return out


class Decision(NamedTuple):
    """What a command is decided on, read in one round trip (`EventLog.read_decision`)."""

    done: list[Record]  # the records its command id already produced (a retry)
    history: list[Record]  # its stream, in version order
    since: list[Record]  # records of the types asked for, after the position given
    complete: bool  # `since` holds every such record (not cut at a page)


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it: the command must be decided again."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, actual {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class ForgottenSubjectError(Exception):
    """Personal data was appended for a subject whose key was destroyed."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of `EventLog.verify`: `ok`, or the first position that fails and why."""

    ok: bool
    checked: int
    last_position: int
    last_hash: str
    first_bad_position: int | None = None
    reason: str | None = None
    checkpoints_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "last_position": self.last_position,
            "last_hash": self.last_hash,
            "first_bad_position": self.first_bad_position,
            "reason": self.reason,
            "checkpoints_checked": self.checkpoints_checked,
        }
