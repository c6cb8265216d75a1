"""Choose the abstention thresholds on the development sets, and show the numbers behind them.

    python bench/calibrate.py ../shared/eval/persianqa_test ../shared/eval/xquad_dev [--max-wrong 0.08]

For each question it records the answer's confidence (the score of the best candidate sentence;
an abstention decided otherwise, e.g. a negated question with no negative quote, counts as abstained
at every threshold) under three labels:

- answerable: the set's own answerable questions, asked of the set's own passages;
- unanswerable: the set's questions with ``answers: []`` (the passage does not say);
- off-topic: each set's questions asked of the *other* set's passages (nothing there answers them).

Then, per question language, it sweeps the threshold and picks the highest one that wrongly
abstains on at most ``--max-wrong`` of the answerable questions. Thresholds are per language
because an English question over Persian text scores lower than a Persian one. The indexes are the
ones `rag eval` caches (built on first use).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rag.answer import ABSTAIN_BELOW, compose
from rag.api import RAG
from rag.eval import _read_jsonl, open_index


def confidences(rag: RAG, questions: list[dict], label_of) -> list[dict]:
    out = []
    for q in questions:
        ans = compose(q["question"], rag.retriever.retrieve(q["question"], 10), rag.store, embedder=rag.embedder)
        lang = q.get("lang", "fa")
        # abstained for another reason than the threshold (a negated question with no negative quote)
        forced = ans.abstained and ans.confidence >= ABSTAIN_BELOW[lang]
        out.append({"lang": lang, "label": label_of(q), "confidence": ans.confidence, "forced": forced})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs=2, type=Path)
    ap.add_argument("--max-wrong", type=float, default=0.08)
    ap.add_argument("--json", type=Path, help="write the records and the choice here")
    args = ap.parse_args()
    a, b = args.sets
    rags = {a: open_index(a), b: open_index(b)}
    qs = {d: _read_jsonl(d / "questions.jsonl") for d in (a, b)}
    records = []
    for d in (a, b):
        records += confidences(rags[d], qs[d], lambda q: "answerable" if q.get("answers") else "unanswerable")
        other = b if d == a else a
        records += confidences(rags[other], qs[d], lambda q: "off-topic")
    chosen = {}
    print("| lang | threshold | answerable wrongly abstained | unanswerable abstained | off-topic abstained |")
    print("|---|---|---|---|---|")
    for lang in sorted({r["lang"] for r in records}):
        # a forced abstention counts as abstained at every threshold
        conf = {lab: np.array([-np.inf if r["forced"] else r["confidence"] for r in records
                               if r["lang"] == lang and r["label"] == lab])
                for lab in ("answerable", "unanswerable", "off-topic")}
        grid = np.round(np.arange(0.9, 1.8, 0.005), 3)
        ok = [t for t in grid if (conf["answerable"] < t).mean() <= args.max_wrong]
        t = float(max(ok)) if ok else float(grid[0])
        chosen[lang] = t
        for tt in sorted({round(t - 0.04, 3), round(t - 0.02, 3), t, round(t + 0.02, 3)}):
            row = [f"{(conf[lab] < tt).mean():.3f}" if len(conf[lab]) else "–"
                   for lab in ("answerable", "unanswerable", "off-topic")]
            mark = " **chosen**" if tt == t else ""
            print(f"| {lang} | {tt}{mark} | " + " | ".join(row) + " |")
    print("\nchosen:", json.dumps(chosen))
    if args.json:
        args.json.write_text(json.dumps({"chosen": chosen, "records": records}))


if __name__ == "__main__":
    main()
