"""Choose the answer step's thresholds (per strictness and language), the blend of the meaning score
into the reader's logit, and the rarity at which a missing question term counts, on one quarter of
the held-out questions; report the rates on the other quarter.

    python bench/calibrate.py [--json R.json]        # ask every question (RAG.ask, trace on)
    python bench/calibrate.py --from-json R.json     # reuse the answers' traces

Every question is asked through ``RAG.ask(..., trace=True)``; the verdict at other settings is
``rag.decision.decide`` called on the traced inputs with another ``Config`` (never a copy of it).
Questions, all of the held-out half (``rag.eval.part_of``: the reader never trained on their
passages), split by passage into the ``choose`` and ``report`` quarters (``quarter_of``):

- answerable / unanswerable: persianqa_test's own (fa), xquad_dev's answerable ones (en, fa);
- off-topic: each of those asked of the other set's passages;
- withheld (SQuAD-2.0-style, en and fa): xquad_dev's questions asked of xquad_dev without the
  paragraphs that answer them (the other paragraphs of the same article stay: on-topic, not answering;
  a question whose answer another paragraph also holds is left out). Built by ``withheld_set``;
- wrong-subject: bench/data/reader/news_wrong's held-out half over the news_qa articles (en, fa);
- the shipped article's own questions (tests/data/seed_questions.jsonl, 20 answerable, 6 wrong-subject)
  and the fresh ones (bench/data/fresh_seed_questions.jsonl): reported only, never chosen on.

A threshold is the highest that wrongly abstains on at most its share of the choose quarter's
answerable questions (``SHARES``: balanced 0.05 Persian, 0.10 English), ``--margin`` below the answerable
question it must keep. A question whose best quote lacks a constraint (rag.constraints) or that has
nothing to quote is abstained on at every threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import RAG  # noqa: E402
from rag.config import DEFAULT, Config  # noqa: E402
from rag.constraints import Evidence, question_constraints, unsupported  # noqa: E402
from rag.decision import DecisionInputs, decide, inputs_of, quotable, reader_rank, threshold  # noqa: E402
from rag.eval import _read_jsonl, cache_root, eval_index, open_index, part_of, quarter_of  # noqa: E402
from rag.persian import negated, normalize_text  # noqa: E402

# answerable questions wrongly abstained on, at most, by strictness and language: English questions
# over Persian articles score flatter, so English trades more of them for its unanswerable ones
SHARES = {"strict": {"fa": 0.10, "en": 0.15}, "balanced": {"fa": 0.05, "en": 0.10},
          "lenient": {"fa": 0.02, "en": 0.05}}
EVAL = ROOT.parent / "shared" / "eval"
NEWS = ROOT / "bench" / "data" / "reader"
SEED = ROOT / "seeds"


def withheld_set(xquad: Path) -> Path:
    """xquad_dev without the paragraphs that answer its held-out questions: an eval folder whose
    questions are those, unanswerable (answers []), keeping their own paragraph's id for the split.
    The index is the cached xquad_dev one with those paragraphs removed."""
    passages = _read_jsonl(xquad / "passages.jsonl")
    questions = [q for q in _read_jsonl(xquad / "questions.jsonl") if part_of(q["passage_id"]) == "heldout"]
    gone = {str(q["passage_id"]) for q in questions}
    kept = [p for p in passages if str(p["passage_id"]) not in gone]
    kept_text = [normalize_text(p["text"]) for p in kept]
    out = cache_root() / "sets" / "xquad_withheld"
    out.mkdir(parents=True, exist_ok=True)
    qs = [dict(q, answers=[]) for q in questions
          if not any(normalize_text(a) in t for a in q["answers"] if a.strip() for t in kept_text)]
    (out / "passages.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in kept))
    (out / "questions.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs))
    target = eval_index(out, None)
    if not target.exists():  # the full set's index, less the withheld paragraphs
        open_index(xquad, reader=False).close()
        shutil.copytree(eval_index(xquad, None), target)
        rag = RAG(target, reader=False)
        for pid in sorted(gone):
            rag.remove(pid)
        rag.close()
    return out


def news_set() -> Path:
    """news_qa's articles with the held-out questions of news_wrong (wrong subject) and of
    news_unanswerable (not in the article), all unanswerable."""
    out = cache_root() / "sets" / "news_wrong"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(NEWS / "news_qa" / "passages.jsonl", out / "passages.jsonl")
    qs = [dict(q, kind=kind) for name, kind in (("news_wrong", "wrong-subject"), ("news_unanswerable", "not-in-article"))
          for q in _read_jsonl(NEWS / name / "questions.jsonl") if part_of(q["passage_id"]) == "heldout"]
    (out / "questions.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs))
    return out


def records(rag: RAG, questions: list[dict], label, name: str) -> list[dict]:
    out = []
    for q in questions:
        ans = rag.ask(q["question"], trace=True)
        answers = [normalize_text(a) for a in q.get("answers") or [] if a.strip()]
        t = ans.trace
        rec = {"set": name, "label": label(q), "lang": q.get("lang") or ans.language, "question": q["question"],
               "id": q.get("id"), "passage_id": str(q.get("passage_id", "")), "negated": negated(q["question"]),
               "abstained": ans.abstained, "unsupported": ans.unsupported,
               "attribution": bool(t.get("attribution")), "inputs": t.get("inputs"),
               "cands": [dict(c, hit=any(a in normalize_text(c["text"]) for a in answers))
                         for c in t.get("candidates", [])]}
        if rec["attribution"]:
            rec["hit"] = any(a in normalize_text(c.quote) for c in ans.citations for a in answers)
        out.append(rec)
    return out


def refresh(recs: list[dict]) -> None:
    """Each read sentence's missing constraints checked again by the current rag.constraints on the
    neighbourhood the trace kept, so records outlive a change to the check (rare terms' IDF, which
    needs the index, kept as traced)."""
    for r in recs:
        if not r["cands"] or "near" not in r["cands"][0]:
            continue
        asked = [c for c in question_constraints(r["question"], r["lang"]) if c.kind != "term"]
        for c in r["cands"]:
            terms = [m for m in c["missing"] if m[1] == "term"]
            c["missing"] = [[x.text, x.kind, math.inf] for x in unsupported(asked, Evidence(c["near"]))] + terms


def outcome(rec: dict, cfg: Config) -> tuple[DecisionInputs | None, bool, bool]:
    """(the decision's inputs, hit@1, hit@3) of a traced answer under ``cfg``'s blend: the read
    sentences ranked as the answer step ranks them (reader_rank); inputs None where the attribution
    line answered (no decision is made there)."""
    cands = rec["cands"]
    if rec["attribution"]:
        return None, rec["hit"], rec["hit"]
    if not cands or rec["inputs"] is None:
        return DecisionInputs(rec["lang"], -math.inf, forced=True), False, False
    key = [reader_rank(c["logit"], c["meaning"], cfg) if c["logit"] is not None else c["meaning"] for c in cands]
    margin = cfg.reader_margin if cands[0]["logit"] is not None else cfg.quote_margin
    order = sorted(range(len(cands)), key=lambda i: -key[i])
    missing = (lambda i: [tuple(m) for m in cands[i]["missing"]]) if cfg.check_constraints else (lambda i: [])
    order, shown = quotable(order, lambda i: key[i], missing, lambda i: cands[i]["negative"], rec["negated"],
                            margin, rec["lang"], cfg)
    top = shown[0] if shown else order[0]
    inputs = inputs_of(rec["inputs"]["lang"], rec["inputs"]["related"], rec["inputs"]["best_logit"], missing(top),
                       forced=not shown)
    hits = [cands[i]["hit"] for i in shown[:3]]
    return inputs, bool(hits and hits[0]), any(hits)


def abstained(rec: dict, cfg: Config) -> bool:
    inputs = outcome(rec, cfg)[0]
    return inputs is not None and decide(inputs, cfg).abstained


def pick(conf: np.ndarray, forced: np.ndarray, share: float, margin: float) -> float:
    """The highest threshold wrongly abstaining on at most ``share`` of these answerable questions
    (forced ones are abstained on at any threshold), ``margin`` below the one it must keep."""
    ans = np.sort(conf[~forced])
    if not len(ans):
        return 0.0
    k = min(max(int(np.floor(share * len(conf))) - int(forced.sum()), 0), len(ans) - 1)
    below = float(ans[k - 1]) if k > 0 else 0.0
    return max(float(ans[k]) - margin, (below + float(ans[k])) / 2) if k > 0 else max(float(ans[k]) - margin, 0.0)


LABELS = ("answerable", "unanswerable", "withheld", "not-in-article", "off-topic", "wrong-subject")


def rates(recs: list[dict], cfg: Config, lang: str, quarter: str | None) -> dict[str, tuple[float, int]]:
    """Share abstained (and count) of each label, in ``lang``, under ``cfg``."""
    out = {}
    for label in LABELS:
        rows = [r for r in recs if r["lang"] == lang and r["label"] == label and r["set"] not in ("seed", "fresh")
                and (quarter is None or quarter_of(r["passage_id"]) == quarter)]
        if rows:
            out[label] = (float(np.mean([abstained(r, cfg) for r in rows])), len(rows))
    return out


def choose(recs: list[dict], cfg: Config, margin: float) -> Config:
    """Thresholds for each strictness and language on the choose quarter's answerable questions."""
    zero = {"fa": 0.0, "en": 0.0}
    anyway = cfg.replace(answer_below=zero, answer_below_strict=zero, answer_below_lenient=zero)
    chosen = {"strict": {}, "balanced": {}, "lenient": {}}
    for lang in sorted({r["lang"] for r in recs}):
        rows = [outcome(r, cfg)[0] for r in recs if r["lang"] == lang and r["label"] == "answerable"
                and r["set"] not in ("seed", "fresh") and quarter_of(r["passage_id"]) == "choose"]
        rows = [i for i in rows if i is not None]
        conf = np.array([decide(i, cfg).confidence for i in rows])
        for level, share in SHARES.items():
            forced = np.array([decide(i, anyway.replace(strictness=level)).abstained for i in rows])
            chosen[level][lang] = round(pick(conf, forced, share[lang], margin), 4)
    return cfg.replace(answer_below=chosen["balanced"], answer_below_strict=chosen["strict"],
                       answer_below_lenient=chosen["lenient"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                    help="a Config setting for the run (and the sweeps around it)")
    ap.add_argument("--from-json", type=Path, nargs="+", help="reuse the records of earlier --json runs")
    ap.add_argument("--only", nargs="+", choices=GROUPS, default=GROUPS, help="ask only these groups of questions")
    ap.add_argument("--no-off-topic", action="store_true", help="skip asking each set's questions of the other's passages")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = DEFAULT.with_settings(args.settings)
    if args.from_json:
        recs = [r for f in args.from_json for r in json.loads(f.read_text())["records"]]
        refresh(recs)
    else:
        recs = collect(cfg, args.only, off_topic=not args.no_off_topic)
        if args.json:
            args.json.write_text(json.dumps({"records": recs}, ensure_ascii=False))
    report(recs, cfg, args.margin)


GROUPS = ["persianqa", "xquad", "withheld", "news", "seed"]


def collect(cfg: Config, groups: list[str] = GROUPS, off_topic: bool = True) -> list[dict]:
    pqa, xq = EVAL / "persianqa_test", EVAL / "xquad_dev"
    held = {d: [q for q in _read_jsonl(d / "questions.jsonl") if part_of(q["passage_id"]) == "heldout"]
            for d in (pqa, xq)}
    rags = {d: open_index(d, config=cfg) for d in (pqa, xq)}
    recs = []
    for d, other, group in ((pqa, xq, "persianqa"), (xq, pqa, "xquad")):
        if group in groups:
            recs += records(rags[d], held[d], lambda q: "answerable" if q.get("answers") else "unanswerable", d.name)
            if off_topic:
                recs += records(rags[other], held[d], lambda q: "off-topic", d.name)
    if "withheld" in groups:
        d = withheld_set(xq)
        recs += records(open_index(d, config=cfg), _read_jsonl(d / "questions.jsonl"), lambda q: "withheld", d.name)
    if "news" in groups:
        d = news_set()
        recs += records(open_index(d, config=cfg), _read_jsonl(d / "questions.jsonl"), lambda q: q["kind"], d.name)
    if "seed" not in groups:
        return recs
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        rag = RAG(Path(tmp) / "ix", create=True, config=cfg)
        rag.ingest([SEED])
        for name, path in (("seed", ROOT / "tests" / "data" / "seed_questions.jsonl"),
                           ("fresh", ROOT / "bench" / "data" / "fresh_seed_questions.jsonl")):
            qs = _read_jsonl(path)
            recs += records(rag, qs, lambda q: "answerable" if q["answers"] else "wrong-subject", name)
    return recs


def report(recs: list[dict], cfg: Config, margin: float) -> None:
    langs = sorted({r["lang"] for r in recs})
    print("## Quote hit@1 / hit@3 of the answerable questions, never abstaining, by blend "
          "(all / choose / report quarter)\n")
    print("| set | lang | blend | hit@1 | hit@3 | hit@1 choose / report |\n|---|---|---|---|---|---|")
    for blend in (4.0, 16.0, 24.0, 48.0):
        c = cfg.replace(reader_blend=blend)
        for key in sorted({(r["set"], r["lang"]) for r in recs if r["label"] == "answerable"}):
            rows = [(quarter_of(r["passage_id"]), outcome(r, c)) for r in recs
                    if (r["set"], r["lang"]) == key and r["label"] == "answerable"]
            q = {x: np.mean([o[1] for qq, o in rows if qq == x]) if any(qq == x for qq, _ in rows) else float("nan")
                 for x in ("choose", "report")}
            print(f"| {key[0]} | {key[1]} | {blend:g} | {np.mean([o[1] for _, o in rows]):.3f} | "
                  f"{np.mean([o[2] for _, o in rows]):.3f} | {q['choose']:.3f} / {q['report']:.3f} |")

    print("\n## A missing question term counts from this IDF on (rare_idf), choose quarter, balanced\n")
    print("| rare_idf | lang | answerable wrongly | " + " | ".join(LABELS[1:]) + " |")
    print("|---" * (len(LABELS) + 2) + "|")
    best, best_score = cfg.rare_idf, -math.inf
    for rare in (math.inf, 6.0, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0):
        c = choose(recs, cfg.replace(rare_idf=rare), margin)
        score = 0.0
        for lang in langs:
            r = rates(recs, c, lang, "choose")
            cells = [f"{r[k][0]:.3f} ({r[k][1]})" if k in r else "–" for k in LABELS]
            print(f"| {rare} | {lang} | " + " | ".join(cells) + " |")
            score += sum(r[k][0] for k in LABELS[1:] if k in r and k != "off-topic")
            if r["answerable"][0] > SHARES["balanced"][lang] + 0.01:  # over its budget: not a choice
                score = -math.inf
        if score > best_score + 1e-9:
            best, best_score = rare, score
    print(f"\nrare_idf with the most unanswerable questions abstained on the choose quarter, answerable ones "
          f"wrongly abstained within budget: {best}")

    for check in (False, True):
        c = choose(recs, cfg.replace(rare_idf=best, check_constraints=check), margin)
        print(f"\n## Held out: the report quarter, constraint check {'on' if check else 'off'} "
              f"(rare_idf {best}; thresholds from the choose quarter)\n")
        print("| strictness | lang | threshold | answerable wrongly | " + " | ".join(LABELS[1:]) + " |")
        print("|---" * (len(LABELS) + 3) + "|")
        for level in SHARES:
            lc = c.replace(strictness=level)
            for lang in langs:
                r = rates(recs, lc, lang, "report")
                cells = [f"{r[k][0]:.3f} ({r[k][1]})" if k in r else "–" for k in LABELS]
                print(f"| {level} | {lang} | {threshold(lang, lc):.4f} | " + " | ".join(cells) + " |")
        for name in ("seed", "fresh"):
            rows = [r for r in recs if r["set"] == name]
            ans = [r for r in rows if r["label"] == "answerable"]
            quoted = sum(1 for r in ans if outcome(r, c)[2] and not abstained(r, c))
            refused = sum(1 for r in rows if r["label"] != "answerable" and abstained(r, c))
            print(f"\n{name} article questions (balanced): answerable quoted in the first 3: {quoted}/{len(ans)}; "
                  f"unanswerable refused: {refused}/{len(rows) - len(ans)}")
        print("\nchosen:", json.dumps({"answer_below": dict(c.answer_below),
                                      "answer_below_strict": dict(c.answer_below_strict),
                                      "answer_below_lenient": dict(c.answer_below_lenient), "rare_idf": best}))


if __name__ == "__main__":
    main()
