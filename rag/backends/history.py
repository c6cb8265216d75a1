"""Numbered migrations, the one way a backend's storage changes (as simonw's llm and sqlite-utils
keep theirs): each a small function named ``mNNN_what``, applied once and in order; the backend
records which ran (the embedded backend in a ``_migrations`` table, ``rag.backends.migrations``;
Milvus in its meta collection, ``rag.backends.milvus``). Never edit one that has shipped: append."""

from __future__ import annotations

from typing import Callable

from .base import StoreError


class History:
    """A backend's migrations, registered in order with ``@history``."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, str, Callable]] = []

    def __call__(self, fn: Callable) -> Callable:
        number = int(fn.__name__[1:4])
        if not fn.__name__.startswith("m") or number != len(self.steps) + 1:
            raise ValueError(f"migration {fn.__name__} is not m{len(self.steps) + 1:03d}_...")
        self.steps.append((number, fn.__name__, fn))
        return fn

    def pending(self, done: set[int], where: object) -> list[tuple[int, str, Callable]]:
        """The migrations not in ``done``, in order; a StoreError when ``done`` holds one this
        version does not know (a newer version wrote the index)."""
        newer = done - {n for n, _, _ in self.steps}
        if newer:
            raise StoreError(f"the index {where} was written by a newer version of this program (migration "
                             f"{max(newer)}; this one knows {len(self.steps)}): upgrade it to read the index")
        return [step for step in self.steps if step[0] not in done]
