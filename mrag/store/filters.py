"""Filters in mrag's own terms, which every backend translates into its engine's filters.

A :class:`Filter` combines conditions (:class:`Match`, :class:`Range`, :class:`HasVector` or
nested filters); :func:`metadata_filter` builds one from ``{metadata key: value}`` pairs, and a
``source`` is matched the way a user names it (:func:`source_condition`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mrag.store.source_names import is_bare_name, portable_name, source_candidates


@dataclass(frozen=True)
class Match:
    """``key`` (a payload path such as ``metadata.source``) equals ``value``, or any of a list."""

    key: str
    value: Any


@dataclass(frozen=True)
class Range:
    """``key`` lies within the bounds given (None: unbounded on that side)."""

    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None

    def bounds(self) -> dict[str, float | None]:
        """The four bounds by name."""
        return {"gte": self.gte, "lte": self.lte, "gt": self.gt, "lt": self.lt}


@dataclass(frozen=True)
class HasVector:
    """The point carries the named vector ``name``."""

    name: str


@dataclass(frozen=True)
class Filter:
    """All of ``must``, at least one of ``should`` (when given), none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __and__(self, other: Filter | None) -> Filter:
        if other is None or other == Filter():
            return self
        if self == Filter():
            return other
        return Filter(must=(self, other))


Condition = Match | Range | HasVector | Filter


def lower_filter(given: Filter | None, leaf: Callable[[Any], Any], make: Callable[..., Any]) -> Any:
    """A backend's filter from ``given``: ``leaf`` converts each condition that is not a
    filter, ``make(must=..., should=..., must_not=...)`` builds the backend's filter."""
    if given is None:
        return None

    def convert(conditions: tuple[Condition, ...]) -> list[Any] | None:
        items = [
            lower_filter(c, leaf, make) if isinstance(c, Filter) else leaf(c) for c in conditions
        ]
        return items or None

    return make(
        must=convert(given.must), should=convert(given.should), must_not=convert(given.must_not)
    )


def source_condition(value: str | Sequence[str]) -> Filter:
    """Points of the sources a user names: by path as typed (resolved or not), or by file name.

    See :func:`mrag.store.source_names.source_candidates`; a bare name also matches
    ``metadata.file_name``.
    """
    given = [value] if isinstance(value, str) else [str(item) for item in value]
    sources = [candidate for item in given for candidate in source_candidates(item)]
    names = [portable_name(item) for item in given if is_bare_name(item)]
    should: list[Condition] = [Match("metadata.source", sources)]
    if names:
        should.append(Match("metadata.file_name", names))
    return Filter(should=tuple(should))


def metadata_filter(conditions: Mapping[str, Any] | None, **extra: Any) -> Filter | None:
    """A filter from ``{"key": value}`` pairs on the metadata (``None`` values ignored; a list
    value matches any of its items). A ``source`` is a path as the user types it or a bare file
    name (:func:`source_condition`)."""
    merged = {**(conditions or {}), **extra}
    must = tuple(
        source_condition(value) if key == "source" else Match(f"metadata.{key}", value)
        for key, value in merged.items()
        if value is not None
    )
    return Filter(must=must) if must else None
