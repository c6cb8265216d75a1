"""Would a classifier over cheap features decide abstention better than the reader's logit? (An
experiment; bench/results/reader.md, "A calibrated classifier".)

    python bench/calibrate.py ../shared/eval/persianqa_test ../shared/eval/xquad_dev --json /tmp/recs.json
    python bench/experiments/reader_features.py /tmp/recs.json

Per question language, a logistic regression on feature sets, cross-fitted over two halves of the
questions (by a hash of their text); abstention rates at 5/8/10% of the answerable wrongly abstained.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rag.answer import reader_rank  # noqa: E402
from rag.config import DEFAULT  # noqa: E402
from rag.persian import normalize_text, terms  # noqa: E402

# a question asking for a number or a date
NUM_Q = re.compile(r"چند|چه\s*سال|کدام\s*سال|چه\s*تاریخ|چه\s*زمان|در\s*چه\s*سالی|چقدر|چه\s*مقدار|چه\s*میزان"
                   r"|how\s+(many|much|long|old)|what\s+year|which\s+year|\bwhen\b|what\s+date|which\s+date"
                   r"|what\s+percent", re.I)
DIGIT = re.compile(r"[0-9۰-۹٠-٩]")
NUMWORD = re.compile(r"\b(یک|دو|سه|چهار|پنج|شش|هفت|هشت|نه|ده|صد|هزار|میلیون|میلیارد|نخستین|اولین|دومین|سومین)\b")


def uni(text: str) -> set[str]:
    """The normalized single-word terms of ``text`` (rag.persian.terms also joins neighbours)."""
    out = set()
    for w in text.split():
        out.update(terms(w))
    return out



def feats(r: dict) -> dict | None:
    """The features of one calibrate record (None when nothing was read)."""
    cfg = DEFAULT
    c = r["cands"]
    if not c:
        return None
    key = [reader_rank(x["logit"], x["meaning"], cfg) for x in c]
    order = sorted(range(len(c)), key=lambda i: -key[i])
    logits = sorted((x["logit"] for x in c), reverse=True)
    best = c[order[0]]
    z = logits[0] + cfg.reader_related[r["lang"]] * (r["related"] - cfg.related_below[r["lang"]])
    q = r["question"]
    qt = uni(q)
    read_terms = set()
    for x in c:
        read_terms |= uni(x["text"]) | uni(x.get("title", ""))
    bt = uni(best["text"]) | uni(best.get("title", ""))
    cov_best = len(qt & bt) / len(qt) if qt else 0
    miss = len(qt - read_terms) / len(qt) if qt else 0
    asks_num = bool(NUM_Q.search(q))
    has_num = bool(DIGIT.search(best["text"]) or NUMWORD.search(normalize_text(best["text"])))
    gap = logits[0] - (logits[1] if len(logits) > 1 else logits[0] - 5)
    return dict(z=z, logit=logits[0], rel=r["related"] - cfg.related_below[r["lang"]], gap=gap,
                cov=cov_best, miss=miss, numq_nonum=float(asks_num and not has_num),
                meaning=best["meaning"])


def fold(r: dict) -> int:
    return hashlib.sha256(r["question"].encode()).digest()[0] % 2


def evaluate(rows: list, use: list[str], lang: str):
    """Cross-fitted scores of the questions of ``lang`` on the features ``use``: the
    answerable-vs-unanswerable AUC and the abstention rates at three thresholds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    sub = [(r, f) for r, f in rows if r["lang"] == lang]
    X = np.array([[f[n] for n in use] for r, f in sub])
    y = np.array([r["label"] == "answerable" for r, f in sub])
    folds = np.array([fold(r) for r, f in sub])
    score = np.zeros(len(sub))
    for k in (0, 1):
        m = LogisticRegression(C=1.0, max_iter=1000).fit(X[folds != k], y[folds != k])
        score[folds == k] = m.decision_function(X[folds == k])
    labs = np.array([r["label"] for r, f in sub])
    out = {}
    A = np.sort(score[labs == "answerable"])
    for share in (0.05, 0.08, 0.10):
        t = A[int(np.floor(share * len(A)))]
        out[share] = {lab: round(float((score[labs == lab] < t).mean()), 3)
                      for lab in ("answerable", "unanswerable", "off-topic") if (labs == lab).any()}
    pair = np.isin(labs, ["answerable", "unanswerable"])
    a = roc_auc_score(labs[pair] == "answerable", score[pair]) if (labs == "unanswerable").any() else None
    return a, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", type=Path, help="the JSON bench/calibrate.py --json wrote")
    recs = json.loads(ap.parse_args().records.read_text())["records"]
    rows = [(r, f) for r in recs if (f := feats(r)) is not None]
    print(len(rows), "records")
    for lang in ("fa", "en"):
        for use in (["z"], ["logit", "rel"], ["logit", "rel", "gap"], ["logit", "rel", "cov", "miss"],
                    ["logit", "rel", "numq_nonum"],
                    ["logit", "rel", "gap", "cov", "miss", "numq_nonum"],
                    ["logit", "rel", "gap", "cov", "miss", "numq_nonum", "meaning"]):
            a, out = evaluate(rows, use, lang)
            print(lang, use, "AUC", a and round(a, 3), out)


if __name__ == "__main__":
    main()
