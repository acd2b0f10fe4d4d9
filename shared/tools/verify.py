"""`grassroots verify [SERVICE ...]`: check each write service's log as an auditor would,
straight from its database, without the platform running.

Every record's hash is recomputed and every link checked (in parts at once, one per core:
`EventLog.verify(jobs=)`). Signed checkpoints (`--checkpoints FILE`, JSON lines) also catch a
tail that was cut off or rewritten with a recomputed chain, which a bare chain cannot show;
`--sign FILE` appends a signed checkpoint of each log's verified head to FILE, to be kept
outside the database as evidence for the next audit. Exit status 1 if any log fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.eventlog import EventLog
from shared.eventlog.checkpoints import export, load
from shared.runtime import catalogue
from shared.tools.platform import database_url, signing_key


def verify(services: Sequence[str], *, checkpoints: Path | None = None,
           sign: Path | None = None, jobs: int | None = None, as_json: bool = False) -> int:
    unknown = sorted(set(services) - set(catalogue.names("write")))
    if unknown:
        print(f"grassroots verify: no write service named {', '.join(unknown)} (there are "
              f"{', '.join(catalogue.names('write'))})", file=sys.stderr)
        return 2
    marks = load(checkpoints) if checkpoints else []
    key = signing_key() if checkpoints or sign else None
    results = {name: _verify_one(name, marks, key, sign, jobs or os.cpu_count() or 1)
               for name in services or catalogue.names("write")}
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for name, result in results.items():
            print(_line(name, result))
    return 0 if all(r["ok"] for r in results.values()) else 1


def _verify_one(name: str, marks: list[Any], key: str | None, sign: Path | None,
                jobs: int) -> dict[str, Any]:
    url = database_url(name)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {"ok": False, "reason": f"no log at {url}"}
    log = EventLog.open(url, service=name, signing_key=key)
    try:
        start = time.perf_counter()
        report = log.verify(marks, jobs=jobs)
        result = {**report.to_dict(), "seconds": round(time.perf_counter() - start, 3)}
        if report.ok and sign is not None and log.signer is not None:
            export(sign, log.signer.sign(name, report.last_position, report.last_hash))
            result["signed"] = str(sign)
        return result
    finally:
        log.close()


def _line(name: str, result: dict[str, Any]) -> str:
    if not result["ok"]:
        where = result.get("first_bad_position")
        return f"{name}: FAILED" + (f" at {where}" if where is not None else "") + \
            f": {result['reason']}"
    marks = result.get("checkpoints_checked") or 0
    extra = [f"{marks} checkpoint" + ("s" if marks > 1 else "")] if marks else []
    extra += ["head signed"] if "signed" in result else []
    return (f"{name}: ok, {result['checked']:,} records, head {result['last_position']} "
            f"{result['last_hash'][:16]}" + "".join(f", {e}" for e in extra) +
            f" ({result['seconds']:.2f} s)")
