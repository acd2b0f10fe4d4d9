"""The service layer every write service shares: load a command, decide it against the
stream's history, append the result with an expected version.

Deciding is pure (each service's `domain.py`); this module does the I/O around it. A retry
carrying a command id the log already holds returns the original records without deciding
again, so a retried request never turns into a conflict with itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import fields, is_dataclass
from functools import cache
from types import TracebackType
from typing import Any, Generic, TypeVar

import msgspec
from marshmallow import Schema, ValidationError

from shared.eventlog import ConcurrencyError, EventLog, NewEvent, Record
from shared.kernel.compiled import Unsure, fast_load
from shared.kernel.contracts import instance, personal_paths, subject_path, value_at
from shared.kernel.errors import Conflict, DomainError, Invalid, flatten
from shared.kernel.fields import FRESH_SUBJECT

S = TypeVar("S")
Decide = Callable[[list[Record]], list[NewEvent]]
RETRIES = 3


def load(schema: type[Schema], payload: Any) -> dict[str, Any]:
    """Validate a wire payload; bad input raises `Invalid` naming each field and reason."""
    if not isinstance(payload, Mapping):
        raise Invalid({"body": ["must be a JSON object"]})
    try:
        return fast_load(schema, dict(payload))
    except Unsure:
        pass
    try:
        return instance(schema).load(dict(payload))
    except ValidationError as exc:
        raise Invalid(flatten(exc.messages)) from None


class ContractBroken(Exception):
    """A decision produced event data its own schema refuses: a bug, never the caller's."""


def check_contract(events: Sequence[NewEvent], contract: Mapping[str, type[Schema]]) -> None:
    """Every event whose type the contract names must load with its schema before it is
    appended, and mark as personal exactly what its schema marks, under the subject the
    schema names: the log only ever holds what subscribers were promised."""
    for event in events:
        schema = contract.get(event.type)
        if schema is None:
            continue
        errors = _errors(schema, event.data)
        if errors:
            raise ContractBroken(f"{event.type} does not match its schema: {flatten(errors)}")
        present = {p for p in personal_paths(schema) if value_at(event.data, p) is not None}
        if set(event.personal) != present:
            raise ContractBroken(f"{event.type} marks {sorted(event.personal)} personal; "
                                 f"its schema marks {sorted(present)}")
        where = subject_path(schema)
        if present and (where is None or event.subject != value_at(event.data, where)):
            raise ContractBroken(f"{event.type}: personal data without its schema's subject")


def _errors(schema: type[Schema], data: Any) -> dict[str, Any]:
    """What `schema().validate(data)` says; none, without asking it, for data the compiled
    loader vouches for."""
    try:
        fast_load(schema, data, postprocess=False)
    except Unsure:
        return instance(schema).validate(data)
    return {}


class Spares:
    """The spare subject ids (`EventLog.spare_subject`) one command takes for its
    `fresh_subject` fields, used as a context around building and executing it.

    `execute` gives back those its appended events do not mention (a returning resident,
    a visit to an enterprise). A command refused (a DomainError: nothing was appended) gives
    back all of them. Any other failure loses them: whether its append committed is not
    known, and a lost spare is only a key with no data, while one handed out twice would put
    two residents under one id.
    """

    def __init__(self, log: EventLog, command: type) -> None:
        self.log = log
        self.taken: dict[str, tuple[Callable[[], str], str]] = {}
        for name, make in _fresh_fields(command):
            if (subject := log.spare_subject(make)) is not None:
                self.taken[name] = (make, subject)
        self.values: dict[str, Any] = {name: s for name, (_, s) in self.taken.items()}

    def settle(self, appended: Sequence[NewEvent]) -> None:
        """Give back the spares `appended` (the events committed) do not mention."""
        for make, subject in self.taken.values():
            if not any(e.subject == subject or _mentions(e.data, subject) for e in appended):
                self.log.give_back_subject(make, subject)
        self.taken = {}

    def __enter__(self) -> Spares:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None or issubclass(kind, DomainError):
            self.settle(())  # what `execute` settled is gone already; the rest comes back
        self.taken = {}  # anything else: lost (see the class)


@cache
def _fresh_fields(command: type) -> tuple[tuple[str, Callable[[], str]], ...]:
    """A command class's `fresh_subject` fields and their factories (asked for every
    command, so worked out once per class)."""
    return tuple((f.name, f.metadata[FRESH_SUBJECT]) for f in
                 (fields(command) if is_dataclass(command) else ()) if FRESH_SUBJECT in f.metadata)


def _mentions(value: Any, text: str) -> bool:
    """Whether `text` is a string in `value`, or part of one: a search of its JSON (the log
    encodes every event's data so). A string that only contains `text` counts too, as a
    spare that merely seems used is lost, never handed out twice. Walking the data in Python
    cost a twentieth of a visit's CPU."""
    return _JSON.encode(text)[1:-1] in _JSON.encode(value)


_JSON = msgspec.json.Encoder()


def execute(
    log: EventLog, stream: str, decide: Decide, *, command_id: str | None,
    actor: str | None, contract: Mapping[str, type[Schema]] | None = None,
    fold: MemoryFold[Any] | None = None, spares: Spares | None = None,
) -> list[Record]:
    """Decide and append; return the records the command produced (or produced before).

    `fold` names the state `decide` reads besides the stream (the roster): it is brought up
    to date by the same query that reads the stream and looks for the command id, and
    answers `current` without asking the log again while `decide` runs. `spares`: the
    command's spare subject ids, settled by what was appended.
    """
    types = fold.types if fold is not None else None
    for attempt in range(RETRIES):
        seen = log.read_decision(stream, command_id=command_id, types=types or (),
                                 after=fold.position if fold is not None and types else 0)
        if seen.done:
            return seen.done
        history = seen.history
        if fold is not None and types:
            fold.advance(seen.since)
        with fold.fresh() if fold is not None and types and seen.complete else nullcontext():
            events = decide(history)
        if not events:
            return []
        check_contract(events, contract or {})
        try:
            records = log.append_records(
                stream, events, expected_version=history[-1].version if history else 0,
                command_id=command_id, actor=actor,
            )
        except ConcurrencyError as exc:
            if attempt == RETRIES - 1:
                raise Conflict(f"{stream} kept changing while this was decided ({exc}); "
                               "try again") from None
        else:
            if spares is not None:
                spares.settle(events)
            return records
    raise AssertionError("unreachable")


class MemoryFold(Generic[S]):
    """State folded from a whole log and kept up to date in memory (e.g. the roster).

    Cheap to ask for: each call reads only what was appended since the last. A fold that
    needs only some event types names them (`types`): the log then reads only those, so the
    roster's few events are found without reading every visit.
    """

    def __init__(
        self, initial: S, step: Callable[[S, Record], S], types: Iterable[str] | None = None,
    ) -> None:
        self._state, self._step, self._position = initial, step, 0
        self.types = tuple(types) if types is not None else None
        self._lock = threading.Lock()
        self._fresh = threading.local()  # green-thread local under eventlet's monkey patch

    @property
    def position(self) -> int:
        """The last record folded (0: none yet)."""
        return self._position

    def current(self, log: EventLog) -> S:
        with self._lock:
            if getattr(self._fresh, "depth", 0):
                return self._state
            for record in log.read(after=self._position, types=self.types):
                self._advance(record)
            return self._state

    def advance(self, records: Iterable[Record]) -> None:
        """Fold records the caller read itself, in log order; those already folded (another
        thread got there first) are skipped."""
        with self._lock:
            for record in records:
                if record.position > self._position:
                    self._advance(record)

    def _advance(self, record: Record) -> None:
        self._state = self._step(self._state, record)
        self._position = record.position

    @contextmanager
    def fresh(self) -> Iterator[None]:
        """Within it, this thread's `current` answers without reading the log: its caller
        has just folded everything the log held (`execute` does, in the query that reads
        the command's stream). Other threads still read: they may have started earlier."""
        local = self._fresh
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1
