"""The process-wide caches, behind one object.

Loading a real file, generating the embedded market or computing a chain series is expensive
and deterministic in its arguments, so each is kept in the process that computed it. Every such
cache registers here under a dotted name, which gives one place to see them
(:meth:`Caches.names`), to empty them (:func:`clear_caches`, e.g. between tests or after
editing a data file in a notebook) and to switch one off for a block
(``with CACHES.disabled("inputs.chain_series.per_date"): ...``).

::

    @CACHES.memo("inputs.market.files", maxsize=64)
    def _load(name, key): ...

    _SERIES = CACHES.mapping("inputs.chainseries.series")  # a dict emptied by clear_caches()

This module sits at the bottom of the layers (beside ``errors``), so every layer may register.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Caches:
    """Named process-wide caches: register, list, clear, switch off."""

    def __init__(self) -> None:
        self._clearers: dict[str, Callable[[], None]] = {}
        self._disabled: set[str] = set()

    def register(self, name: str, clear: Callable[[], None]) -> None:
        """Register the cache ``name`` with the call that empties it (re-registering a name,
        as a module reload does, replaces the previous entry)."""
        self._clearers[name] = clear

    def memo(self, name: str, maxsize: int | None = 128) -> Callable:
        """``functools.lru_cache(maxsize)`` registered as ``name``."""

        def decorate(fn: Callable) -> Callable:
            cached = functools.lru_cache(maxsize=maxsize)(fn)
            self.register(name, cached.cache_clear)
            return cached

        return decorate

    def mapping(self, name: str) -> dict:
        """A plain dict registered as ``name`` (emptied by :meth:`clear`)."""
        store: dict = {}
        self.register(name, store.clear)
        return store

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._clearers))

    def clear(self, name: str | None = None) -> None:
        """Empty one cache, every cache under a dotted prefix, or (no name) all of them."""
        if name is None:
            targets = list(self._clearers)
        else:
            targets = [n for n in self._clearers if n == name or n.startswith(name + ".")]
            if not targets:
                raise KeyError(f"no cache named {name!r}; registered: {', '.join(self.names())}")
        for n in targets:
            self._clearers[n]()

    def enabled(self, name: str) -> bool:
        return name not in self._disabled

    @contextmanager
    def disabled(self, name: str) -> Iterator[None]:
        """Within the block, code that asks :meth:`enabled` for ``name`` recomputes."""
        already = name in self._disabled
        self._disabled.add(name)
        try:
            yield
        finally:
            if not already:
                self._disabled.discard(name)


CACHES = Caches()


def clear_caches(name: str | None = None) -> None:
    """Empty the process-wide caches (all of them, or those under ``name``)."""
    CACHES.clear(name)
