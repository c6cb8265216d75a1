"""What the reader is given and what it picks, on the held-out answerable questions of dev sets:
per set and language, how often an answer-holding sentence is among the first k candidates by
meaning (``in@k``), and how often the reader's first pick holds it when it reads k, at several
blends of the meaning score (``top1@k/bB``).

    python bench/experiments/reader_reach.py ../shared/eval/xquad_dev [../shared/eval/persianqa_test]

Uses the indexes `rag eval` caches and the shipped reader (bench/results/reader.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: calibrate

from calibrate import records  # noqa: E402
from rag.config import DEFAULT  # noqa: E402
from rag.eval import _read_jsonl, open_index, part_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", type=Path)
    ap.add_argument("--read", type=int, nargs="+", default=[5, 8, 12, 40])
    ap.add_argument("--blend", type=float, nargs="+", default=[0.0, 4.0, 8.0, 16.0])
    args = ap.parse_args()
    config = DEFAULT.replace(reader_candidates=max(args.read))  # calibrate's records, reading more
    rows: dict[str, list[tuple[list[bool], np.ndarray, np.ndarray]]] = {}
    for d in args.sets:
        qs = [q for q in _read_jsonl(d / "questions.jsonl") if part_of(q["passage_id"]) == "heldout" and q.get("answers")]
        for rec in records(open_index(d, reader=True, config=config), qs, lambda q: "answerable", d.name):
            cands = rec["cands"]
            rows.setdefault(f"{d.name} {rec['lang']}", []).append(
                ([c["hit"] for c in cands], np.asarray([c["logit"] for c in cands]),
                 np.asarray([c["meaning"] for c in cands])))
    head = [f"in@{k}" for k in args.read] + [f"top1@{k}/b{b:g}" for k in args.read for b in args.blend]
    print("| set | n | " + " | ".join(head) + " |")
    print("|---|---|" + "---|" * len(head))
    for key, rs in rows.items():
        cells = [np.mean([any(h[:k]) for h, _, _ in rs]) for k in args.read]
        cells += [np.mean([bool(h) and h[int(np.argmax((lg + b * m)[:k]))] for h, lg, m in rs])
                  for k in args.read for b in args.blend]
        print(f"| {key} | {len(rs)} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
