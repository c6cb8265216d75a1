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

The grouping itself (:func:`join`) exists once; each backend keeps its keys, fingerprints and
groups in its own storage behind :class:`StoryStore`.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from typing import Hashable, Protocol

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


def word_hashes(word_set: set[str]) -> np.ndarray:
    """The words as sorted 32-bit hashes (CRC-32): what a backend stores to check a candidate on its
    words without reading and splitting its text again (~1 ms a candidate). Two sets of ~300
    words share a hash by chance with probability ~2e-5, so the Jaccard is the words' own."""
    return np.unique(np.fromiter((zlib.crc32(w.encode()) for w in word_set), dtype=np.uint32,
                                 count=len(word_set)))


def jaccard_hashes(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`jaccard` of two :func:`word_hashes`."""
    if not a.size and not b.size:
        return 0.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


def fingerprint(word_set: set[str]) -> np.ndarray:
    """The MinHash values (uint32, ``PERMUTATIONS`` of them) of an article's ``words``."""
    from datasketch import MinHash  # imported on demand: scipy comes with it (~0.5 s)

    if not _PERMUTATIONS:  # drawn from SEED once, not per article (0.4 ms each time)
        first = MinHash(num_perm=PERMUTATIONS, seed=SEED)
        _PERMUTATIONS[:] = [first.permutations, first.scheme]
    m = MinHash(num_perm=PERMUTATIONS, seed=SEED, permutations=_PERMUTATIONS[0], scheme=_PERMUTATIONS[1])
    m.update_batch([w.encode() for w in word_set])
    return np.asarray(m.hashvalues, dtype=np.uint32)


_PERMUTATIONS: list = []


def band_keys(signature: np.ndarray) -> list[int]:
    """The LSH keys of a fingerprint (signed 63-bit, as SQLite and Milvus store integers)."""
    out = []
    for b in range(BANDS):
        part = signature[b * ROWS:(b + 1) * ROWS].astype("<u4").tobytes()
        h = hashlib.blake2b(bytes([b]) + part, digest_size=8).digest()
        out.append(int.from_bytes(h, "little") >> 1)
    return out


# An estimate from PERMUTATIONS values has a standard error of sqrt(J(1-J)/64) = 0.057 at J = 0.3.
RULED_OUT = THRESHOLD - 2 * (THRESHOLD * (1 - THRESHOLD) / PERMUTATIONS) ** 0.5   # 0.185


def not_ruled_out(a: np.ndarray, others: list[bytes | None]) -> list[bool]:
    """For each of ``others`` (stored fingerprints; None: none stored), whether its words must be
    read: not when the fingerprints put the pair two standard errors or more below the threshold
    (most LSH candidates are not copies). By chance a pair at Jaccard 0.3 is ruled out 1.5% of the
    time, at 0.35 0.14%, at 0.4 0.008% (a copy with a fifth of its words edited keeps 0.4 or more:
    bench/results/news.md). One numpy pass over all of them."""
    rows = [i for i, b in enumerate(others) if b is not None and len(b) == 4 * len(a)]
    out = [True] * len(others)
    if rows:
        m = np.frombuffer(b"".join(others[i] for i in rows), dtype=np.uint32).reshape(len(rows), len(a))
        for i, est in zip(rows, (m == np.asarray(a, dtype=np.uint32)).mean(axis=1)):
            out[i] = bool(est >= RULED_OUT)
    return out


class StoryStore(Protocol):
    """What a backend stores for story groups. A stored article is named by the backend's own
    ``ref`` (the embedded backend: its row id; Milvus: its id), with its ``article_id``."""

    def keys(self, keys: list[int], article_id: str, per_key: int) -> list[tuple[str, Hashable]]:
        """``(article_id, ref)`` of the stored articles (not ``article_id``) holding each of
        ``keys``, the newest ``per_key`` of each key (the same article once per key it holds)."""

    def signatures(self, refs: list[Hashable]) -> dict[Hashable, tuple[bytes | None, bytes | None]]:
        """``ref -> (MinHash bytes, word-hash bytes)`` of the stored articles among ``refs``; None
        for what an article stored by an older version lacks."""

    def words(self, ref: Hashable) -> set[str] | None:
        """The words of a stored article (read from its text), None when it is gone."""

    def story(self, ref: Hashable) -> str:
        """The story group of a stored article."""

    def keep(self, article_id: str, ref: Hashable, story: str, signature: np.ndarray, hashes: np.ndarray,
             keys: list[int]) -> None:
        """Store the article's group, fingerprint, word hashes and LSH keys (replacing its old ones)."""

    def members(self, stories: list[str]) -> dict[str, list]:
        """The articles (``ArticleInfo``) of each story group, first stored first."""


def join(store: StoryStore, article_id: str, ref: Hashable, text: str) -> str:
    """Put the article (``text``: its content) in the story of its closest stored copy, or in a
    story of its own, and store its keys; returns the story. Each key's newest ``PER_KEY`` rows
    are read, so the cost does not grow with the archive; a candidate its MinHash rules out is
    not read (reading their words was 30 ms an article); the others are checked on their stored
    word hashes, or on their text when an older version stored none."""
    mine = words(text)
    signature = fingerprint(mine)
    keys = band_keys(signature)
    shared = Counter(store.keys(keys, article_id, PER_KEY))
    kept = [c for c, _ in sorted(shared.items(), key=lambda x: (-x[1], x[0]))[:CANDIDATES]]
    sigs = store.signatures([ref_ for _, ref_ in kept])
    kept = [c for c in kept if c[1] in sigs]
    close = not_ruled_out(signature, [sigs[c[1]][0] for c in kept])
    hashes = word_hashes(mine)
    best, best_j = None, THRESHOLD
    for (_, their_ref), maybe in zip(kept, close):
        if not maybe:
            continue
        theirs = sigs[their_ref][1]
        if theirs is not None:
            j = jaccard_hashes(hashes, np.frombuffer(theirs, dtype=np.uint32))
        else:
            their_words = store.words(their_ref)
            if their_words is None:
                continue
            j = jaccard(mine, their_words)
        if j >= best_j:
            best, best_j = their_ref, j
    story = store.story(best) if best is not None else article_id
    store.keep(article_id, ref, story, signature, hashes, keys)
    return story
