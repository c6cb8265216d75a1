"""The shipped article's own questions (tests/data/seed_questions.jsonl: 20 a reader of it would ask,
in Persian and English, with the words the quote must hold; 6 it does not answer), asked of an
index of seeds/, with and without the reader. ``--questions bench/data/fresh_seed_questions.jsonl``
asks 22 more, written later and never used to choose anything (bench/results/reader.md).

    python bench/seed_questions.py [--no-reader] [--questions FILE] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import RAG  # noqa: E402
from rag.config import DEFAULT  # noqa: E402
from rag.persian import normalize_text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-reader", action="store_true")
    ap.add_argument("--questions", type=Path, default=ROOT / "tests" / "data" / "seed_questions.jsonl")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        rag = RAG(Path(tmp) / "ix", create=True, reader=not args.no_reader,
                  config=DEFAULT.with_settings(args.settings))
        rag.ingest([ROOT / "seeds"])
        print("| id | lang | question | expected | outcome | confidence | missing |\n|---|---|---|---|---|---|---|")
        good = {"answerable": 0, "unanswerable": 0}
        for q in questions:
            ans = rag.ask(q["question"])
            keys = [normalize_text(a) for a in q["answers"]]
            if q["answers"]:
                at = next((i + 1 for i, c in enumerate(ans.citations[:3])
                           if any(k in normalize_text(c.quote) for k in keys)), None)
                outcome = "abstained" if ans.abstained else (f"quoted at {at}" if at else "wrong quotes")
                good["answerable"] += at is not None
            else:
                outcome = "abstained" if ans.abstained else "answered"
                good["unanswerable"] += ans.abstained
            print(f"| {q['id']} | {q['lang']} | {q['question']} | {'answer' if q['answers'] else 'none'} | "
                  f"{outcome} | {ans.confidence:.3f} | {', '.join(ans.unsupported)} |")
        n_ans = sum(1 for q in questions if q["answers"])
        print(f"\nanswerable quoted (hit@3): {good['answerable']}/{n_ans}; "
              f"unanswerable abstained: {good['unanswerable']}/{len(questions) - n_ans}")


if __name__ == "__main__":
    main()
