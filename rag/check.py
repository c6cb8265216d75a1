"""``rag check``: whether an index's parts agree, and repairing them from its records.

An index holds each article in several places: its record (text and metadata: the source of
truth), its passages, their vectors (the embedded backend's FAISS ids; Milvus's passage rows), the
lexicon (FTS5 rows and term counts; Milvus's terms field, from which its BM25 function works) and
its story keys. A crash, a bug or two writers can leave them disagreeing, which shows only as
silently wrong answers. :func:`check` compares them article by article (ids and counts, from each
backend's ``Inventory``), asks the dense search for a sample of passages by their own vectors, and
re-derives a sample of articles from their records (cut and embedded again, compared with what is
stored). :func:`repair` rewrites the affected articles from their records (re-embedding only them)
and deletes what no record owns.
"""

from __future__ import annotations

import importlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from . import stories
from .backends import scheme

# A re-embedded passage must point where the stored one does (int8 codes keep cosine ~0.9999;
# the default embedder's two engines agree to ~0.9999, its int8 variant to ~0.996).
SAME_VECTOR = 0.99
SAMPLE = 20   # articles re-derived, and passages searched by their own vectors, per check

READINGS = ("both", "passages", "sentences")  # rag.api's readings, the default first
SIDES = {"": "rag.backends.embedded_check", "milvus": "rag.backends.milvus_check"}
# What each kind of disagreement means, for the report.
KINDS = {
    "doubled article": "the records hold the article more than once",
    "doubled passages": "a passage of the article is stored more than once",
    "missing passages": "passages the record counts are not stored",
    "stale passages": "passages of another version of the article are still stored",
    "orphan passages": "passages whose article is not in the records",
    "missing vectors": "passages the dense search cannot find",
    "orphan vectors": "vectors of no stored passage",
    "misfiled vectors": "a passage's stored vector does not find the passage",
    "missing lexicon": "passages the lexical search cannot find by their own terms",
    "orphan lexicon": "lexicon rows of no stored passage",
    "lexicon statistics": "term counts that differ from the lexicon",
    "missing story keys": "the article lacks its story keys",
    "stale story keys": "story keys of an article not in the records",
    "stale story group": "the article's story is named after an article not in the records",
    "passages differ": "the record cut again gives other passages than those stored",
    "vectors differ": "the record embedded again gives other vectors than those stored",
}


@dataclass
class Finding:
    kind: str
    article: str | None
    detail: str
    group: str | None = None    # a stale story group: the article it is named after


@dataclass
class CheckReport:
    location: str
    articles: int
    passages: int
    sampled: list[str]
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    repaired: list[str] = field(default_factory=list)   # articles rewritten from their records
    unrepaired: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict:
        return {"location": self.location, "ok": self.ok, "articles": self.articles, "passages": self.passages,
                "sampled": len(self.sampled), "seconds": round(self.seconds, 2),
                "findings": [asdict(f) for f in self.findings], "repaired": self.repaired,
                "unrepaired": [asdict(f) for f in self.unrepaired]}

    def lines(self) -> list[str]:
        out = [f"{f.kind}: {f.article or '-'}: {f.detail}" for f in self.findings]
        counts = Counter(f.kind for f in self.findings)
        out.append(f"{self.articles} articles, {self.passages} passages, {len(self.sampled)} re-derived: "
                   + ("consistent" if self.ok else ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
                   + f" ({self.seconds:.1f} s)")
        return out


def side(store):
    """The backend's check module (``inventory``, ``stored``, ``finds_itself``, ``repair``)."""
    return importlib.import_module(SIDES[scheme(store.location)])


def _ids(ids) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def compare(inv) -> list[Finding]:
    """The disagreements between the parts of an ``Inventory``."""
    out: list[Finding] = []
    add = lambda kind, article, detail, group=None: out.append(Finding(kind, article, detail, group))  # noqa: E731
    mine: dict[str, list] = defaultdict(list)
    for pid, aid, seq, current in inv.passages:
        mine[aid].append((pid, seq, current))
    owned = {pid for pid, *_ in inv.passages}
    for aid, (_, versions) in sorted(inv.articles.items()):
        if versions > 1:
            add("doubled article", aid, f"{versions} record versions")
        rows = mine.get(aid, [])
        stale = [p for p, _, cur in rows if not cur]
        if stale:
            add("stale passages", aid, f"passages {_ids(stale)}")
        seqs = Counter(s for _, s, cur in rows if cur)
        twice = sorted(s for s, n in seqs.items() if n > 1)
        if twice:
            add("doubled passages", aid, f"passage numbers {_ids(twice)} stored {max(seqs.values())} times")
        n = inv.chunks.get(aid, 0) if inv.chunks is not None else (max(seqs) + 1 if seqs else 0)
        lacking = sorted(set(range(n)) - set(seqs))
        if lacking:
            add("missing passages", aid, f"passage numbers {_ids(lacking)} of {n}")
        beyond = sorted(s for s in seqs if s >= n)
        if beyond:
            add("stale passages", aid, f"passage numbers {_ids(beyond)} beyond the record's {n}")
        ids = [p for p, _, cur in rows if cur]
        no_vec = [p for p in ids if p not in inv.vectors]
        if no_vec:
            add("missing vectors", aid, f"passages {_ids(no_vec)}")
        no_lex = [p for p in ids if p not in inv.lexicon]
        if no_lex:
            add("missing lexicon", aid, f"passages {_ids(no_lex)}")
        keys, group = inv.story_keys.get(aid, 0), inv.story_groups.get(aid)
        if keys != stories.BANDS or group is None:
            add("missing story keys", aid, f"{keys} key rows of {stories.BANDS}" + ("" if group else ", no head row"))
        elif group not in inv.articles:
            add("stale story group", aid, f"its story is named after {group!r}", group)
    for aid in sorted(set(mine) - set(inv.articles)):
        add("orphan passages", aid, f"passages {_ids(p for p, *_ in mine[aid])}")
    if inv.vectors - owned:
        add("orphan vectors", None, f"ids {_ids(inv.vectors - owned)}")
    if inv.lexicon - owned:
        add("orphan lexicon", None, f"rows {_ids(inv.lexicon - owned)}")
    for aid in sorted(set(inv.story_keys) - set(inv.articles)):
        add("stale story keys", aid, f"{inv.story_keys[aid]} key rows")
    for problem in inv.lexicon_problems:
        add("lexicon statistics", None, problem)
    return out


def rederive(store, embedder, article_id: str, reading: str):
    """The article as its record makes it now: ``(article, segmentation, passage vectors, sentence
    vectors)``, or None when the record is gone."""
    from .api import embed_segmented
    from .chunking import segment_article

    art = store.get(article_id)
    if art is None:
        return None
    seg = segment_article(art, embedder.count_tokens)
    pv, sv = embed_segmented(embedder, [(art, seg)], reading)[0]
    return art, seg, pv, sv


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def check(store, embedder=None, sample: int = SAMPLE, seed: int = 0, reading: str = "both") -> CheckReport:
    """Compare ``store``'s parts; re-derive ``sample`` articles (chosen with ``seed``) with
    ``embedder`` (None: no re-derivation) and search their passages by their own vectors."""
    t0 = time.perf_counter()
    part = side(store)
    inv = part.inventory(store)
    findings = compare(inv)
    ids = sorted(inv.articles)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(ids, min(sample, len(ids))))
    for aid in chosen:
        have = part.stored(store, aid)
        if have and not part.finds_itself(store, have[0][0], have[0][3]):
            findings.append(Finding("misfiled vectors", aid, f"passage {have[0][0]}"))
        if embedder is None:
            continue
        made = rederive(store, embedder, aid, reading)
        if made is None:
            continue
        _, seg, pv, _ = made
        if [(c.start, c.end) for c in seg.chunks] != [(s, e) for _, s, e, _ in have]:
            findings.append(Finding("passages differ", aid, f"{len(seg.chunks)} passages cut, {len(have)} stored"))
            continue
        if have:
            stored_vectors = np.vstack([v for *_, v in have])
            cos = _cos(pv, stored_vectors)
            for other in READINGS:  # ingested with another --reading: its vectors are those
                if cos.min() >= SAME_VECTOR or other == reading:
                    continue
                cos = np.maximum(cos, _cos(rederive(store, embedder, aid, other)[2], stored_vectors))
            if cos.min() < SAME_VECTOR:
                findings.append(Finding("vectors differ", aid, f"cosine {cos.min():.3f} (at least {SAME_VECTOR})"))
    n_passages = len(inv.passages)
    return CheckReport(store.location, len(inv.articles), n_passages, chosen, findings, time.perf_counter() - t0)


def repair(store, embedder, report: CheckReport, reading: str = "both", **check_options) -> CheckReport:
    """Repair what ``report`` found from the records: each affected article is cut, embedded and
    stored again (every row of it replaced), rows no record owns are deleted, a damaged lexicon is
    remade from the passages. Returns the check made after the repair, with what was rewritten
    and what could not be repaired (an article whose record is unreadable)."""
    affected = sorted({f.article for f in report.findings if f.article and f.kind not in
                       ("orphan passages", "stale story keys", "stale story group")})
    stale_groups = {f.group for f in report.findings if f.kind == "stale story group"}
    orphans = {f.article for f in report.findings if f.kind in ("orphan passages", "stale story keys")}
    unrepaired = []
    rewrite = []
    for aid in affected:
        try:
            made = rederive(store, embedder, aid, reading)
        except Exception as exc:  # an unreadable record: reported, the rest repaired
            made = None
            unrepaired.append(Finding("unreadable record", aid, str(exc)))
        if made is None:
            orphans.add(aid)
            continue
        art, seg, pv, sv = made
        rewrite.append((art, seg.chunks, pv, seg.sentences, sv))
    lexicon = any(f.kind.endswith("lexicon") or f.kind == "lexicon statistics" for f in report.findings)
    side(store).repair(store, rewrite, orphans, stale_groups, lexicon)
    after = check(store, embedder, reading=reading, **check_options)
    after.repaired = [item[0].id for item in rewrite]
    after.unrepaired = unrepaired + after.findings
    return after
