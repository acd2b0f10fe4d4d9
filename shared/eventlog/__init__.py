"""The append-only, hash-chained event log every write service records to."""

from shared.eventlog.checkpoints import Checkpoint, Signer
from shared.eventlog.log import EventLog
from shared.eventlog.model import (
    ConcurrencyError,
    ForgottenSubjectError,
    NewEvent,
    Record,
    VerifyReport,
)
from shared.eventlog.upcasting import Upcasters

__all__ = [
    "Checkpoint",
    "EventLog",
    "Signer",
    "Upcasters",
    "ConcurrencyError",
    "ForgottenSubjectError",
    "NewEvent",
    "Record",
    "VerifyReport",
]
