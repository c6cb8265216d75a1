"""Choose the reader's abstention thresholds and blend on the held-out halves of the dev sets, and
show the numbers behind them.

    python bench/calibrate.py ../shared/eval/persianqa_test ../shared/eval/xquad_dev [--part heldout]
    python bench/calibrate.py ... --no-reader      # the cosine confidence, as before the reader
    python bench/calibrate.py ... --from-json R.json --split   # thresholds chosen on one quarter,
                                                   # rates reported on the other

For each question of the part (``rag.eval.part_of``: the reader never trained on it) it records,
for every sentence the reader reads, the reader's logit, the meaning score and whether the sentence
holds an answer, under three labels:

- answerable: the set's own answerable questions, asked of the set's own passages;
- unanswerable: the set's questions with ``answers: []`` (the passage does not say);
- off-topic: each set's questions asked of the *other* set's passages (nothing there answers them).

Then, for each blend of the meaning score into the reader's logit, quote hit@1/hit@3 of the
answerable questions, and the blend with the most hit@1 + hit@3 on one quarter of the part
(``quarter_of``: "choose"; the other quarter only reports); and per question language, a sweep of the probability threshold, picking the
one that wrongly abstains on at most ``--max-wrong`` of the answerable questions (0.05 for
both by default), ``--margin`` below the lowest answerable question it keeps (at most halfway to
the next one down).
An abstention forced otherwise (a negated question with no negative quote) counts as abstained at
every threshold. The indexes are the ones `rag eval` caches.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer import answer_probability, candidate_sentences, compose, reader_rank  # noqa: E402
from rag.api import RAG  # noqa: E402
from rag.config import DEFAULT, Config  # noqa: E402
from rag.eval import _read_jsonl, open_index, part_of, quarter_of  # noqa: E402
from rag.persian import detect_language, negated, negative_or_exception, normalize_text  # noqa: E402

MAX_WRONG = 0.05  # answerable questions wrongly abstained on, at most, where --max-wrong names no language


def records(rag: RAG, questions: list[dict], label_of, use_reader: bool) -> list[dict]:
    cfg = rag.config
    reader = rag.reader() if use_reader else None
    out = []
    for q in questions:
        question = q["question"]
        retrieved = rag.retriever.retrieve(question, 10)
        cands, related = candidate_sentences(question, retrieved, rag.embedder, cfg, reader)
        answers = [normalize_text(a) for a in q.get("answers") or [] if a.strip()]
        lang = q.get("lang") or detect_language(question)
        rec = {"lang": lang, "label": label_of(q), "related": related, "negated": negated(question),
               "question": question, "passage_id": str(q["passage_id"]), "cands": []}
        read = cands[:cfg.reader_candidates] if reader else cands
        logits = reader.logits(question, [(c.title, c.text, c.before) for c in read]) if reader else [0.0] * len(read)
        for c, lg in zip(read, logits):
            rec["cands"].append({"logit": float(lg), "meaning": c.score, "text": c.text, "title": c.title,
                                 "hit": any(a in normalize_text(c.text) for a in answers),
                                 "neg": negative_or_exception(c.text)})
        if not reader:  # the cosine answer step as it decides
            ans = compose(question, retrieved, embedder=rag.embedder, config=cfg.replace(
                related_below={"fa": -9.0, "en": -9.0}))
            rec["cosine_abstained"] = ans.abstained
        out.append(rec)
    return out


def outcome(rec: dict, cfg: Config, use_reader: bool) -> tuple[float, bool, bool, bool]:
    """(score abstention is decided on, forced abstention, hit@1, hit@3) of one record, as
    ``compose`` would decide with ``cfg`` (its own formulas: answer_probability, reader_rank)."""
    cands = rec["cands"]
    if not cands:
        return -math.inf, True, False, False
    if not use_reader:
        key = [c["meaning"] for c in cands]
        conf, m = rec["related"], cfg.quote_margin
    else:
        key = [reader_rank(c["logit"], c["meaning"], cfg) for c in cands]
        conf = answer_probability(max(c["logit"] for c in cands), rec["related"], rec["lang"], cfg)
        m = cfg.reader_margin
    order = sorted(range(len(cands)), key=lambda i: -key[i])
    best = key[order[0]]
    shown = [i for i in order if key[i] >= best - m]
    if rec["negated"]:
        shown = [i for i in shown if cands[i]["neg"]]
    forced = not shown
    hits = [cands[i]["hit"] for i in shown[:3]]
    return conf, forced, bool(hits[:1] and hits[0]), any(hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs=2, type=Path)
    ap.add_argument("--part", default="heldout", choices=["heldout", "train", "all"])
    ap.add_argument("--max-wrong", type=json.loads, default={"fa": MAX_WRONG, "en": MAX_WRONG},
                    help='per language, e.g. \'{"fa": 0.08, "en": 0.05}\'')
    ap.add_argument("--margin", type=float, default=0.02,
                    help="how far below the lowest answerable question kept the threshold goes: the same "
                         "question's probability moved ~0.004 between two machines (bench/results/reader.md)")
    ap.add_argument("--no-reader", action="store_true")
    ap.add_argument("--related", type=json.loads, default=None,
                    help='weight of the cosine confidence in the decision (rag.config reader_related), '
                         'a number or per language, e.g. \'{"fa": 4, "en": 32}\'')
    ap.add_argument("--split", action="store_true",
                    help="choose each threshold on one quarter (half the part's passages) and report its "
                         "rates on the other quarter, so the rates are those of unseen questions")
    ap.add_argument("--from-json", type=Path, help="reuse the records of an earlier --json run")
    ap.add_argument("--json", type=Path, help="write the records and the choice here")
    args = ap.parse_args()
    use_reader = not args.no_reader
    a, b = args.sets
    if args.from_json:
        recs = json.loads(args.from_json.read_text())["records"]
        _add_passage_ids(recs, {d.name: d for d in (a, b)})
        report(recs, args, use_reader)
        return
    rags = {d: open_index(d, reader=use_reader) for d in (a, b)}

    def questions(d: Path) -> list[dict]:
        qs = _read_jsonl(d / "questions.jsonl")
        return qs if args.part == "all" else [q for q in qs if part_of(q["passage_id"]) == args.part]

    recs = []
    for d in (a, b):
        qs = questions(d)
        recs += [dict(r, set=d.name) for r in records(rags[d], qs, lambda q: "answerable" if q.get("answers")
                                                      else "unanswerable", use_reader)]
        other = b if d == a else a
        recs += [dict(r, set=d.name) for r in records(rags[other], qs, lambda q: "off-topic", use_reader)]
    report(recs, args, use_reader)


def report(recs: list[dict], args, use_reader: bool) -> None:

    blends = [0.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0] if use_reader else [0.0]
    print(f"## quote hits of the answerable questions ({args.part} part, never abstaining), by blend\n")
    print("hit@1 and hit@3 of all, then of the quarter the blend is chosen on / the other quarter "
          "(`quarter_of`)\n")
    print("| set | lang | blend | hit@1 | hit@3 | hit@1 choose / report |\n|---|---|---|---|---|---|")
    chosen_sum = {}
    for blend in blends:
        cfg = DEFAULT.replace(reader_blend=blend)
        chosen_sum[blend] = 0.0
        for key in sorted({(r["set"], r["lang"]) for r in recs}):
            rows = [(quarter_of(r["passage_id"]), outcome(r, cfg, use_reader)) for r in recs
                    if (r["set"], r["lang"]) == key and r["label"] == "answerable"]
            quarter = {q: np.mean([x[2] for qq, x in rows if qq == q]) for q in ("choose", "report")}
            chosen_sum[blend] += quarter["choose"] + np.mean([x[3] for qq, x in rows if qq == "choose"])
            print(f"| {key[0]} | {key[1]} | {blend:g} | {np.mean([x[2] for _, x in rows]):.3f} | "
                  f"{np.mean([x[3] for _, x in rows]):.3f} | {quarter['choose']:.3f} / {quarter['report']:.3f} |")
    if use_reader:
        best = max(blends, key=lambda b: (round(chosen_sum[b], 6), -b))
        print(f"\nblend with the most hit@1 + hit@3 on the choose quarter (summed over sets and languages): {best:g}")
        print("\n## answerable vs unanswerable AUC, by weight of the cosine confidence (reader_related)\n")
        print("| reader_related | " + " | ".join(sorted({r["lang"] for r in recs})) + " |\n|---|---|---|")
        for v in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
            row = []
            for lang in sorted({r["lang"] for r in recs}):
                cfg = DEFAULT.replace(reader_related=v)
                c = {lab: np.array([-np.inf if forced else x for x, forced, _, _ in
                                    (outcome(r, cfg, True) for r in recs
                                     if r["lang"] == lang and r["label"] == lab)])
                     for lab in ("answerable", "unanswerable", "off-topic")}
                a1, a2 = _auc(c["answerable"], c["unanswerable"]), _auc(c["answerable"], c["off-topic"])
                row.append(f"{a1:.3f} / off-topic {a2:.3f}" if a1 is not None else f"– / off-topic {a2:.3f}")
            print(f"| {v} | " + " | ".join(row) + " |")
    chosen = {}
    rel = dict(DEFAULT.reader_related) if args.related is None else args.related
    decide = DEFAULT.replace(reader_related=rel)
    split = " (thresholds chosen on the choose quarter, rates of the report quarter)" if args.split else ""
    print(f"\n## abstention ({args.part} part, reader_related {rel}){split}\n")
    print("| lang | threshold | answerable wrongly abstained | unanswerable abstained | off-topic abstained |")
    print("|---|---|---|---|---|")
    for lang in sorted({r["lang"] for r in recs}):
        def scores(quarter: str | None) -> dict[str, np.ndarray]:
            out = {}
            for lab in ("answerable", "unanswerable", "off-topic"):
                outs = [outcome(r, decide, use_reader) for r in recs if r["lang"] == lang and r["label"] == lab
                        and (quarter is None or quarter_of(r["passage_id"]) == quarter)]
                out[lab] = np.array([-np.inf if forced else c for c, forced, _, _ in outs])
            return out

        conf = scores("report" if args.split else None)
        basis = scores("choose")["answerable"] if args.split else conf["answerable"]
        limit = args.max_wrong.get(lang, MAX_WRONG) if isinstance(args.max_wrong, dict) else float(args.max_wrong)
        ans = np.sort(basis[np.isfinite(basis)])
        forced = int((~np.isfinite(basis)).sum())

        def at(share: float) -> float:
            """The threshold wrongly abstaining on <= share (of basis): ``--margin`` below the
            answerable question it must keep (a threshold on a question's own probability flips it
            on another machine's rounding), never below the answerable question under that one."""
            if not len(ans):
                return 0.0
            k = min(max(int(np.floor(share * len(basis))) - forced, 0), len(ans) - 1)
            below = float(ans[k - 1]) if k > 0 else 0.0
            return max(float(ans[k]) - args.margin, (below + float(ans[k])) / 2)

        t = at(limit)
        chosen[lang] = round(t, 4)
        for tt in sorted({at(x) for x in (0.02, 0.05, limit, 0.10, 0.15)}):
            row = [f"{(conf[lab] < tt).mean():.3f}" if len(conf[lab]) else "–"
                   for lab in ("answerable", "unanswerable", "off-topic")]
            mark = " **chosen**" if tt == t else ""
            print(f"| {lang} | {tt:.4f}{mark} | " + " | ".join(row) + " |")
        auc = _auc(conf["answerable"], conf["unanswerable"])
        if auc is not None:
            print(f"| {lang} | (AUC answerable vs unanswerable: {auc:.3f}) | | | |")
    print("\nchosen:", json.dumps(chosen))
    if args.json:
        args.json.write_text(json.dumps({"chosen": chosen, "records": recs}))


def _add_passage_ids(recs: list[dict], sets: dict[str, Path]) -> None:
    """Records written before they carried ``passage_id``: look it up by the question's text."""
    if all("passage_id" in r for r in recs):
        return
    ids = {}
    for name, d in sets.items():
        for q in _read_jsonl(d / "questions.jsonl"):
            ids[(name, q["question"])] = str(q["passage_id"])
    for r in recs:
        r.setdefault("passage_id", ids[(r["set"], r["question"])])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    if not len(pos) or not len(neg):
        return None
    p = np.nan_to_num(pos, neginf=-1e9)[:, None]
    n = np.nan_to_num(neg, neginf=-1e9)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (len(pos) * len(neg)))


if __name__ == "__main__":
    main()
