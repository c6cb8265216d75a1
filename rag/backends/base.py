"""What every index backend gives the rest of the code: the records it returns, the one coarse
read a question makes (``candidates``), the errors, and the vector codec they share.

A backend holds articles (raw text, metadata), their passages and sentences (offsets into the raw
text) with vectors, and a lexicon of each passage's normalized terms (BM25). Writers call
``put``/``remove`` inside ``writing()``; a question calls ``candidates`` once. Retrieval and the
answer step work only on what ``candidates`` returns.
"""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..articles import Article
from ..chunking import Chunk
from ..errors import UserError
from ..persian import terms


class StoreError(UserError):
    """A problem with the index (folder, file or server); the message names it and what to do."""


class IndexUnavailable(StoreError):
    """The index's server cannot be reached (down or restarting): the same call may work in a
    moment, with nothing to repair (the app says so and retries on the next question)."""


@dataclass(frozen=True)
class Filter:
    """Which articles a question may be answered from: published between ``since`` and
    ``until`` (ISO days, inclusive; an undated article passes neither) and by one of ``sources``
    (canonical agency names, ``rag.agencies``). Backends apply it inside their search."""

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def passes(self, source: str | None, date: str | None) -> bool:
        if self.sources and source not in self.sources:
            return False
        if (self.since or self.until) and not date:
            return False
        return not ((self.since and date < self.since) or (self.until and date > self.until))


@dataclass(frozen=True)
class ArticleInfo:
    id: str
    title: str
    source: str | None
    date: str | None
    url: str | None
    path: str | None
    chunks: int
    chars: int
    date_inferred: bool = False
    calendar: str | None = None
    group: str | None = None       # its story group: the id of the story's first article (its own when alone)
    month_day: str | None = None   # "MM-DD" in ``calendar`` when only day and month are known (``date`` None)


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    article_id: str
    title: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage(ChunkRow):
    """A candidate passage with what a question needs of it, read in one go.

    ``sentences`` are ``(sentence_id, start, end)`` in text order (offsets into the article), with
    their vectors in ``sentence_vectors`` (row i ↔ sentence i); a sentence id is unique within
    the index for as long as its article is unchanged."""

    vector: np.ndarray
    sentences: tuple[tuple[int, int, int], ...]
    sentence_vectors: np.ndarray
    lexical: float = 0.0  # BM25 for the question's terms (0 when the lexical side did not find it)
    source: str | None = None   # the article's agency, date (ISO), whether its year was inferred, the
    date: str | None = None     # calendar it wrote its date in, and its story group
    date_inferred: bool = False
    calendar: str | None = None
    group: str | None = None
    month_day: str | None = None  # day and month ("MM-DD" in ``calendar``) when the year is unknown


@dataclass
class Candidates:
    """The answer of ``candidates``: passages found by meaning or by their words (each once),
    the BM25 ranking of the lexical side, and what the lexical weight is computed from."""

    passages: list[Passage]
    lexical: list[tuple[int, float]] = field(default_factory=list)  # (chunk_id, bm25), best first
    document_frequencies: dict[str, int] = field(default_factory=dict)
    total_passages: int = 0
    # the articles of each candidate's story group (first stored first), keyed by group
    stories: dict[str, list[ArticleInfo]] = field(default_factory=dict)


QueryVector = np.ndarray | Future  # a Future: the question still being embedded (see resolve)


def resolve(query_vector: QueryVector) -> np.ndarray:
    """The question's vector; a backend resolves it only when its dense side needs it, so the
    lexical side runs while the question is embedded."""
    return query_vector.result() if isinstance(query_vector, Future) else query_vector


class Backend(Protocol):
    """The interface of an index backend (``rag.backends.embedded``, ``rag.backends.milvus``)."""

    location: str
    embedder: str
    dim: int

    def writing(self, timeout: float = 10.0) -> AbstractContextManager: ...
    def state(self, article_id: str) -> tuple[str, str | None] | None: ...
    def put(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[Chunk] | None = None,
            sentence_vectors: np.ndarray | None = None) -> str: ...
    def put_many(self, items: list[tuple[Article, list[Chunk], np.ndarray, list[Chunk], np.ndarray | None]]
                 ) -> list[str]: ...
    def remove(self, article_id: str) -> bool: ...
    def candidates(self, query_vector: QueryVector, query_terms: list[str], n: int, dense: bool = True,
                   lexical: bool = True, max_postings: int | None = None, where: Filter | None = None
                   ) -> Candidates: ...
    def get(self, article_id: str) -> Article | None: ...
    def article_chunks(self, article_id: str) -> list[ChunkRow]: ...
    def articles(self, where: Filter | None = None) -> list[ArticleInfo]: ...
    def count(self) -> tuple[int, int]: ...
    def refresh(self) -> bool: ...
    def close(self) -> None: ...


def passage_terms(title: str, text: str) -> str:
    """What the lexicon holds for a passage: its normalized terms (title included, as the dense side
    embeds it), space-separated."""
    return " ".join(terms(f"{title}\n{text}"))


def rarest(df: dict[str, int], max_postings: int | None) -> list[str]:
    """The known terms, rarest first, while together they hold at most ``max_postings`` passages
    (at least one): what a backend's lexical side matches."""
    known = sorted((t for t, d in df.items() if d > 0), key=lambda t: (df[t], t))
    if max_postings is None:
        return known
    chosen, total = [], 0
    for t in known:
        if chosen and total + df[t] > max_postings:
            break
        chosen.append(t)
        total += df[t]
    return chosen


def rebuild_hint(location: object) -> str:
    return f"rebuild it with: rag ingest ARTICLES... --index {location} (after moving {location} away)"


def check_vectors(article: Article, spans: list[Chunk], vectors: np.ndarray | None, dim: int,
                  where: object) -> np.ndarray:
    """``vectors`` as float32 (one per span) after checking shapes and that spans lie in the text."""
    if not spans:
        return np.zeros((0, dim), dtype=np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(spans):
        raise ValueError("one vector per passage or sentence")
    if vectors.shape[1] != dim:
        raise StoreError(f"embedder gives dimension {vectors.shape[1]}, index {where} holds {dim}")
    for c in spans:
        if not (0 <= c.start < c.end <= len(article.text)):
            raise ValueError(f"span {c} outside article {article.id!r}")
    return vectors


def check_items(items: list, dim: int, where: object) -> list:
    """``put_many``'s items ``(article, chunks, vectors, sentences, sentence vectors)`` with their
    vectors checked (:func:`check_vectors`) and sentences never None."""
    return [(a, c, check_vectors(a, c, v, dim, where), s or [], check_vectors(a, s or [], sv, dim, where))
            for a, c, v, s, sv in items]


# ------------------------------------------------------------------ int8 vectors

def sort_changes(items: list, stored) -> tuple[list[str], list]:
    """Each item's status (``added``, ``updated``, ``unchanged``) and the items to write.
    ``stored(article)``: None when the article is not stored, else whether it is stored unchanged."""
    statuses, todo = [], []
    for item in items:
        same = stored(item[0])
        if same:
            statuses.append("unchanged")
        else:
            statuses.append("added" if same is None else "updated")
            todo.append(item)
    return statuses, todo


def quantize(vectors: np.ndarray) -> np.ndarray:
    """Rows of float32 as int8 codes with one float32 scale each (``dim + 4`` bytes a row): cosines
    from them differ from float32's by ~1e-3, a quarter of the bytes."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    scale = np.abs(v).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(v / scale), -127, 127).astype(np.int8)
    out = np.empty((len(v), v.shape[1] + 4), dtype=np.uint8)
    out[:, :4] = scale.astype(np.float32).view(np.uint8)
    out[:, 4:] = codes.view(np.uint8)
    return out


def dequantize(packed: np.ndarray, dim: int) -> np.ndarray:
    """Inverse of :func:`quantize` (rows of ``dim + 4`` bytes → float32 rows)."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8).reshape(-1, dim + 4)
    scale = packed[:, :4].copy().view(np.float32)
    return packed[:, 4:].view(np.int8).astype(np.float32) * scale
