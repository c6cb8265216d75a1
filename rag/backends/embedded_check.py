"""The embedded backend's side of ``rag check``: its inventory (records, the FAISS ids as loaded
and caught up, the lexicon's rows and statistics, story keys) and repairs made from the records."""

from __future__ import annotations

import numpy as np

from .base import StoreError, dequantize
from .inventory import Inventory
from .migrations import m002_lexicon
from .vectors import VectorIndex


def inventory(ix) -> Inventory:
    """What ``ix`` (an ``EmbeddedIndex``) holds, read in one snapshot of its database, with its
    vector index caught up to that snapshot."""
    db = ix.records.db
    with ix._lock, ix.records.errors():
        # FTS5's own count of the rows holding each term, to hold term_df against
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexicon_vocab USING fts5vocab(main, 'lexicon', 'row')")
        for _ in range(10):  # a write landed between the catch-up and the snapshot: again
            ix.refresh()
            with ix.records.snapshot():
                if ix.records.generation() != ix._generation:
                    continue
                articles = {a: (sha, 1) for a, sha in db.execute("SELECT id, sha FROM articles")}
                passages = [(p, a, s, True) for p, a, s in db.execute("SELECT id, article_id, seq FROM passages")]
                lexicon = {r for (r,) in db.execute("SELECT rowid FROM lexicon")}
                vocab = dict(db.execute("SELECT term, doc FROM temp.lexicon_vocab"))
                df = dict(db.execute("SELECT term, df FROM term_df"))
                keys = dict(db.execute("SELECT article_id, count(*) FROM story_keys GROUP BY article_id"))
                groups = {a: (g if head else None) for a, g, head in db.execute(
                    "SELECT a.id, coalesce(a.story, a.id), (s.seq IS NOT NULL OR a.minhash IS NOT NULL) "
                    "FROM articles a LEFT JOIN signatures s ON s.seq = a.rowid")}
                vectors = set(ix.vectors.ids().tolist())
                break
        else:
            raise StoreError(f"the index {ix.path} is being written to without pause; check it when writers are done")
    # FTS5's tokenizer folds case where rag.persian.terms may not (a Greek capital with breathing
    # marks, seen at 67k articles): both sides are compared by the lowercased term
    vocab, df = _folded(vocab), _folded(df)
    wrong = sorted(t for t in set(vocab) | set(df) if vocab.get(t, 0) != df.get(t, 0))
    problems = [f"{len(wrong)} terms' passage counts (term_df) differ from the lexicon's, e.g. "
                + ", ".join(f"{t!r}: {df.get(t, 0)} vs {vocab.get(t, 0)}" for t in wrong[:3])] if wrong else []
    return Inventory(articles, passages, vectors, lexicon, None, keys, groups, problems)


def _folded(counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t, n in counts.items():
        out[t.lower()] = out.get(t.lower(), 0) + n
    return out


def stored(ix, article_id: str) -> list[tuple[int, int, int, np.ndarray]]:
    """``(passage id, start, end, vector as stored)`` of an article's passages, in order."""
    with ix._lock, ix.records.errors():
        rows = ix.records.db.execute('SELECT id, start, "end", vector FROM passages WHERE article_id=? '
                                     "ORDER BY seq, id", (article_id,)).fetchall()
    return [(p, s, e, dequantize(np.frombuffer(v, np.uint8), ix.dim)[0]) for p, s, e, v in rows]


def finds_itself(ix, passage_id: int, vector: np.ndarray, k: int = 10) -> bool:
    """Whether the dense search returns the passage for its own stored vector (a vector filed under
    another id, or damaged, does not)."""
    with ix._lock:
        return passage_id in ix.vectors.search(vector, k)


def repair(ix, rewrite: list, orphans: set[str], stale_groups: set[str], lexicon: bool) -> None:
    """Under the writer lock: delete the rows of articles not in the records (their passages,
    sentences, story keys: ``orphans`` names them; every such row goes), remake the lexicon from the passages when ``lexicon`` (its rows
    can only be deleted by their exact terms, so a damaged one is remade whole), rename the
    ``stale_groups`` (stories named after an article no longer stored) after their first member,
    store ``rewrite`` (put_many items made from the records, every row of each article replaced),
    then rebuild the vector index from the records and write it."""
    with ix.writing(), ix._lock, ix.records.errors(writing=True):
        records = ix.records
        records.db.execute("DROP TABLE IF EXISTS temp.lexicon_vocab")
        with records.transaction() as db:
            gen = records._bump(db)
            gone = [r[0] for r in db.execute("SELECT id FROM passages WHERE article_id NOT IN "
                                             "(SELECT id FROM articles)")]
            db.executemany("INSERT INTO removed VALUES (?, ?)", [(i, gen) for i in gone])
            db.execute("DELETE FROM passages WHERE article_id NOT IN (SELECT id FROM articles)")
            db.execute("DELETE FROM sentences WHERE article_id NOT IN (SELECT id FROM articles)")
            db.execute("DELETE FROM story_keys WHERE article_id NOT IN (SELECT id FROM articles)")
            db.execute("DELETE FROM signatures WHERE seq NOT IN (SELECT rowid FROM articles)")
            for story in sorted(stale_groups):
                heir = db.execute("SELECT id FROM articles WHERE story=? ORDER BY added, id LIMIT 1",
                                  (story,)).fetchone()
                if heir:
                    db.execute("UPDATE articles SET story=? WHERE story=?", (heir[0], story))
            if lexicon or gone:
                m002_lexicon(db, ix.dim)
        if rewrite:
            # a doubled article's extra rows go with the rest of its rows (_delete takes them all)
            with records.transaction() as db:
                for item in rewrite:
                    db.execute("DELETE FROM story_keys WHERE article_id=?", (item[0].id,))
            records.put_many(rewrite)
        ix._vectors = VectorIndex(ix.dim, ix.ann_from, ix.nprobe, source=ix._stored_vectors)
        ix._generation = 0
        ix._catch_up()
        ix.flush(force=True)

