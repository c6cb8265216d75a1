"""Publication dates and agencies on a real archive, as ingestion reads them.

    python bench/news_meta.py ../shared/eval/fars_meta_dev

DIR holds ``articles.jsonl`` (id, title, text; no date, no source: the app sees only the text) and
``gold.jsonl`` (id, date: the publication day, source: "Fars" where the lead attributes the report
to Fars, else null). The articles go through ``rag.articles.load_file`` as any JSONL file ingested
does, so the numbers are the app's. Prints the dated share, how many dates fall within a day of the
publication day, wrong years, agency recall on the Fars-attributed articles, agency names that are
not outlets, and why the undated articles got no date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.agencies import OUTLETS  # noqa: E402
from rag.articles import load_file  # noqa: E402
from rag.dates import find_dates  # noqa: E402

_KNOWN = {en for en, _, _ in OUTLETS}
# An agency name that is a piece of a sentence, a desk or a reporter, not an outlet's name.
_ODD = re.compile(r"(?:^|\s)(?:و|در|از|به|که|با|را|ما|این|آمده|گفت|گروه|خبرنگار|سرویس|دبیر|بخش|مراسل|"
                  r"واحد|دفتر|مرکز)(?:\s|$)|\d")


def odd_name(name: str) -> bool:
    return name not in _KNOWN and (bool(_ODD.search(name)) or len(name.split()) > 4)


def why_undated(art) -> str:
    """Why an article got no publication date, from what dates its text writes."""
    if getattr(art, "month_day", None):
        return "day and month written, year unknown (kept so)"
    found = find_dates(art.content())
    if not found:
        return "no date written anywhere"
    if all(f.year is None for f in found):
        return "only days without a year, not in a dateline/attribution"
    return "full dates only in the body (events), none in a dateline/attribution"


def _day_within_one(art, real: dt.date) -> bool:
    """Whether a day without a year (month-day in its calendar) is the publication day, give or take one."""
    from rag.dates import month_day_of

    return any(month_day_of(art.calendar, real + dt.timedelta(days=d)) == tuple(map(int, art.month_day.split("-")))
               for d in (-1, 0, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--show", type=int, default=0, help="print this many wrong dates and missed agencies")
    args = ap.parse_args()
    gold = {r["id"]: r for r in map(json.loads, (args.dir / "gold.jsonl").read_text(encoding="utf-8").splitlines())}
    loaded = load_file(args.dir / "articles.jsonl")
    arts = {a.id: a for a in loaded.articles}
    assert not loaded.skipped, loaded.skipped
    today = dt.date.today()
    n = len(gold)
    dated = [a for a in arts.values() if a.date]
    right, wrong_year, later = 0, 0, 0
    wrong = []
    for a in dated:
        day, real = dt.date.fromisoformat(a.date), dt.date.fromisoformat(gold[a.id]["date"])
        later += day > today
        if abs((day - real).days) <= 1:
            right += 1
        else:
            wrong.append((a.id, a.date, gold[a.id]["date"], a.date_inferred))
            wrong_year += day.year != real.year
    partial = [a for a in arts.values() if getattr(a, "month_day", None)]
    partial_right = sum(_day_within_one(a, dt.date.fromisoformat(gold[a.id]["date"])) for a in partial)
    fars = [i for i, g in gold.items() if g["source"] == "Fars"]
    got = sum(arts[i].source == "Fars" for i in fars)
    others = Counter(arts[i].source for i, g in gold.items() if g["source"] != "Fars")
    names = Counter(a.source for a in arts.values() if a.source)
    odd = {k: v for k, v in names.items() if odd_name(k)}
    print(f"articles: {n}")
    print(f"given a full date: {len(dated)} ({len(dated) / n:.1%}); year inferred from the article: "
          f"{sum(a.date_inferred for a in dated)}; day and month with year unknown: {len(partial)}")
    print(f"days with year unknown within a day of the publication day (day and month): {partial_right} of "
          f"{len(partial)}")
    print(f"dates within a day of the publication day: {right} of {len(dated)} "
          f"(precision {right / max(1, len(dated)):.3f}); wrong year: {wrong_year}; later than today: {later}")
    print(f"Fars-attributed articles given Fars: {got} of {len(fars)} ({got / max(1, len(fars)):.3f})")
    print(f"others (lead not attributed to Fars) given: {dict(others.most_common())}")
    print(f"agency names: {len(names)} distinct; not in the outlet table: "
          f"{dict((k, v) for k, v in names.most_common() if k not in _KNOWN)}")
    print(f"odd agency names (not outlets): {len(odd)} distinct, {sum(odd.values())} articles: {odd}")
    why = Counter(why_undated(a) for a in arts.values() if not a.date)
    print("undated, why:")
    for k, v in why.most_common():
        print(f"  {v:4d}  {k}")
    for row in wrong[:args.show]:
        print("wrong date:", *row)
    for i in [i for i in fars if arts[i].source != "Fars"][:args.show]:
        print("missed Fars:", i, arts[i].source, repr(arts[i].text[:160]))


if __name__ == "__main__":
    main()
