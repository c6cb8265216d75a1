"""Any sentence-transformers model by hub id or local path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .base import MODEL_LOCK, EmbedderError, scrub_surrogates


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by hub id or local path.

    E5-family models get their ``query: `` / ``passage: `` prefixes; other models are used as they
    are. Loading by hub id needs the model in the local cache or network access, which the user
    opts into; tests use a model a package ships on disk."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbedderError(
                f"model {model!r} needs sentence-transformers: pip install -e .") from exc
        path = Path(model).expanduser()
        self.name = str(path.resolve()) if path.exists() else model
        self.device = device
        try:
            self._model = SentenceTransformer(self.name, device=device)
        except Exception as exc:
            raise EmbedderError(f"cannot load sentence-transformers model {model!r}: {exc}") from None
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        lowered = self.name.lower()
        is_e5 = "e5" in Path(lowered).name or "/e5" in lowered or "-e5-" in lowered
        self._q_prefix = "query: " if is_e5 else ""
        self._p_prefix = "passage: " if is_e5 else ""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._p_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._q_prefix + t for t in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [scrub_surrogates(t) for t in texts]
        with MODEL_LOCK:
            out = self._model.encode(texts, batch_size=32, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])
