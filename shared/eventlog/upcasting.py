"""Schema evolution: old events are upcast on read so code only ever sees the newest shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Upcasters:
    """A registry of functions, each lifting one (type, version) to version + 1."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `@upcasters.register("visit.recorded", 1)` lifts v1 data to v2."""

        def add(fn: Upcaster) -> Upcaster:
            key = (type_, from_version)
            if key in self._steps:
                raise ValueError(f"an upcaster for {type_} v{from_version} is registered already")
            self._steps[key] = fn
            return fn

        return add

    def __bool__(self) -> bool:
        return bool(self._steps)

    def upcasts(self, type_: str, version: int) -> bool:
        """Whether data of this type and version is lifted on read (else it is read as is)."""
        return (type_, version) in self._steps

    def upcast(self, type_: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Apply the chain of steps from `version` for as long as one is registered."""
        step = self._steps.get((type_, version))
        while step is not None:
            data = step(data)
            version += 1
            step = self._steps.get((type_, version))
        return version, data
