"""Format 2 index folders (float32 vectors of every passage and sentence, two FAISS files) to
format 3, in place and in one SQLite transaction: a crash leaves the old format, which the next
open migrates again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from .base import StoreError, quantize, rebuild_hint
from .records import SCHEMA


def migrate_format_2(path: Path, manifest: dict) -> dict:
    from .embedded import DB, FORMAT, MANIFEST, atomic_write

    dim = int(manifest["dim"])
    try:
        db = sqlite3.connect(path / DB, timeout=30, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "chunks" in tables:
            db.execute("ALTER TABLE articles RENAME TO articles_v2")
            db.execute("ALTER TABLE sentences RENAME TO sentences_v2")
            db.execute("DROP INDEX IF EXISTS sentences_article")
            for stmt in SCHEMA.split(";"):  # not executescript: it would commit the transaction
                if stmt.strip():
                    db.execute(stmt)
            db.execute("INSERT INTO articles (id, title, source, date, url, path, sha, added, spans, text) "
                       "SELECT id, title, source, date, url, path, sha, added, spans, text FROM articles_v2")
            gen = int((db.execute("SELECT value FROM meta WHERE key='generation'").fetchone() or [0])[0])
            for pid, aid, seq, start, end, blob in db.execute(
                    'SELECT id, article_id, seq, start, "end", vector FROM chunks').fetchall():
                vec = quantize(np.frombuffer(blob, dtype=np.float32).reshape(1, dim))[0]
                db.execute('INSERT INTO passages (id, article_id, seq, start, "end", gen, vector) '
                           "VALUES (?,?,?,?,?,?,?)", (pid, aid, seq, start, end, gen, vec.tobytes()))
            by_article: dict[str, list] = {}
            for aid, start, end, blob in db.execute(
                    'SELECT article_id, start, "end", vector FROM sentences_v2 ORDER BY article_id, start'):
                by_article.setdefault(aid, []).append((start, end, np.frombuffer(blob, dtype=np.float32)))
            for aid, rows in by_article.items():
                spans = np.asarray([(s, e) for s, e, _ in rows], dtype=np.int64)
                vecs = quantize(np.vstack([v for _, _, v in rows]).reshape(-1, dim))
                db.execute("INSERT INTO sentences (article_id, spans, vectors) VALUES (?,?,?)",
                           (aid, spans.tobytes(), vecs.tobytes()))
            for t in ("chunks", "sentences_v2", "articles_v2"):
                db.execute(f"DROP TABLE {t}")
        db.execute("COMMIT")
        db.close()
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise StoreError(f"cannot migrate the index {path} from format 2 ({exc}); {rebuild_hint(path)}") from None
    manifest = {k: v for k, v in manifest.items() if k not in ("faiss_generation", "faiss_crc32")}
    manifest["format"] = FORMAT
    atomic_write(path / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
    for old in ("vectors.faiss", "sentences.faiss"):
        (path / old).unlink(missing_ok=True)
    return manifest
