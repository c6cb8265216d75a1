"""One story told by many: near-duplicate articles (a wire story republished by several agencies,
lightly edited) found at ingestion.

An article's words are its set of normalized terms (so spelling variants of one word meet); two
articles are copies when the Jaccard similarity of their word sets is at least ``THRESHOLD``.
Candidates are found through MinHash (datasketch) LSH bands: ``BANDS`` keys an article, each a
hash of ``ROWS`` of its MinHash values, which a backend indexes, so finding an article's copies
reads a few rows, not the archive; each candidate is then checked on its words exactly.
bench/stories.py measures grouping of made copies and of distinct stories on one topic (word
sets measured better than word pairs there: a copy with a fifth of its words edited keeps ~0.6
of its words but ~0.35 of its pairs, while distinct stories share at most ~0.2 of their words).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .persian import terms

PERMUTATIONS = 64
BANDS, ROWS = 32, 2            # a pair of Jaccard 0.3 becomes candidates 95% of the time, 0.4: 99.6%
THRESHOLD = 0.3
SEED = 1
CANDIDATES = 32                # candidate copies checked for an article, at most (most shared keys first)
# Key rows read per key, newest first. A key made of two common words' minima is shared by a fixed
# share of the archive (the heaviest by 13% of a 10k archive), so reading all of a key's rows makes
# storing an article O(archive); a copy shares ~a third of its keys with its original, most of them
# rare, so a bounded read still meets it (bench/stories.py --archive).
PER_KEY = 16


def words(text: str) -> set[str]:
    return set(terms(text))


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def fingerprint(text: str) -> np.ndarray:
    """The article's MinHash values (uint32, ``PERMUTATIONS`` of them)."""
    from datasketch import MinHash  # imported on demand: scipy comes with it (~0.5 s)

    m = MinHash(num_perm=PERMUTATIONS, seed=SEED)
    m.update_batch([w.encode() for w in words(text)])
    return np.asarray(m.hashvalues, dtype=np.uint32)


def band_keys(signature: np.ndarray) -> list[int]:
    """The LSH keys of a fingerprint (signed 63-bit, as SQLite and Milvus store integers)."""
    out = []
    for b in range(BANDS):
        part = signature[b * ROWS:(b + 1) * ROWS].astype("<u4").tobytes()
        h = hashlib.blake2b(bytes([b]) + part, digest_size=8).digest()
        out.append(int.from_bytes(h, "little") >> 1)
    return out


def estimate(a: np.ndarray, b: bytes | np.ndarray) -> float:
    """The Jaccard similarity two fingerprints estimate (``b`` as stored: uint32 bytes)."""
    other = np.frombuffer(b, dtype=np.uint32) if isinstance(b, (bytes, bytearray, memoryview)) else np.asarray(b)
    return float(np.mean(np.asarray(a, dtype=np.uint32) == other)) if len(other) == len(a) else 1.0


def ruled_out(a: np.ndarray, b: bytes | np.ndarray) -> bool:
    """Whether the fingerprints say the two share less than half the threshold: then their words
    need not be read (most LSH candidates in an archive of one topic are not copies)."""
    return estimate(a, b) < THRESHOLD / 2


def is_copy(a: str, b: str) -> bool:
    """Whether two article texts tell one story (checked on their words, not estimated)."""
    return jaccard(words(a), words(b)) >= THRESHOLD
