"""A learned linear correction for sentence vectors pooled out of their passage's forward pass.

A sentence's tokens, read inside its passage, carry the passage's context: their mean lies nearer the
passage than the sentence read alone does, which costs English questions over Persian text the
sentence that answers them (bench/results/embed.md). ``e5_span_map.npy`` maps ``[pooled, passage,
1]`` (the normalized pooled vector, the normalized passage vector, a bias) to the difference
between the sentence read alone and its pooled vector: a ridge regression fitted on the paragraphs
of ``../shared/train/parsquad_train`` by ``python bench/train_span_map.py``, which rebuilds the
file (its checksum, the data and the fit's figures are in ``e5_span_map.json``). It is specific to
the bundled multilingual-e5-small weights.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import EmbedderError
from .convert import sha256_file

MAP_FILE = Path(__file__).with_name("e5_span_map.npy")
MANIFEST = Path(__file__).with_name("e5_span_map.json")


def _digest(manifest: Path) -> str:
    return str(json.loads(manifest.read_text(encoding="utf-8"))["sha256"])


@lru_cache(maxsize=4)
def load_span_map(path: Path = MAP_FILE, manifest: Path = MANIFEST) -> np.ndarray:
    """The map's matrix (2·dim + 1 rows, dim columns), checked against its manifest's checksum."""
    try:
        digest = _digest(manifest)
        if sha256_file(path) != digest:
            raise EmbedderError(f"{path} does not match its checksum in {manifest}; "
                                f"rebuild it with python bench/train_span_map.py")
        return np.load(path).astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise EmbedderError(f"cannot read the span map {path}: {exc}") from None


def span_map_id() -> str:
    """A short name of the shipped map (its checksum), for cache keys of indexes built with it."""
    try:
        return _digest(MANIFEST)[:12]
    except (OSError, KeyError, ValueError):
        return "none"


def span_features(pooled: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """The map's input rows ``[pooled, passage, 1]``: ``pooled`` n × dim, ``passage`` one vector
    for all rows or one row each (what bench/train_span_map.py fits on, and what is applied)."""
    n, dim = pooled.shape
    x = np.empty((n, 2 * dim + 1), dtype=pooled.dtype)
    x[:, :dim] = pooled
    x[:, dim:2 * dim] = passage
    x[:, 2 * dim] = 1.0
    return x


def apply_span_map(weights: np.ndarray, pooled: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """Corrected, normalized vectors of ``pooled`` (n × dim, normalized), all from the passage
    whose normalized vector is ``passage``."""
    out = pooled + span_features(pooled, passage) @ weights
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
