"""Article → sentences and chunks: chunks are runs of whole sentences, sized in model tokens, with a
one-sentence overlap. Both get vectors: chunks find the passage, sentences find the quote.

Every chunk is ``article.text[start:end]``; chunks never cross a content-span boundary (so a
repeated title or a footer never lands inside one). A sentence longer than the budget is cut at
word boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .articles import Article
from .persian import split_sentences

MAX_TOKENS = 160  # a change here is a change of rag.persian.SEGMENTATION
OVERLAP_TOKENS = 48


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int


def _cut_long(text: str, s: int, e: int, count: Callable[[str], int], budget: int) -> list[tuple[int, int]]:
    """Cut ``text[s:e]`` at whitespace into pieces of at most ``budget`` tokens (a single word longer
    than that stays whole: the embedder windows it)."""
    pieces: list[tuple[int, int]] = []
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[s:e])]
    cur_s = None
    cur_e = None
    cur_tokens = 0
    for ws, we in words:
        ws, we = ws + s, we + s
        n = count(text[ws:we])
        if cur_s is not None and cur_tokens + n > budget:
            pieces.append((cur_s, cur_e))
            cur_s, cur_tokens = None, 0
        if cur_s is None:
            cur_s = ws
        cur_e = we
        cur_tokens += n
    if cur_s is not None:
        pieces.append((cur_s, cur_e))
    return pieces


@dataclass(frozen=True)
class Segmented:
    """An article cut for indexing: ``sentences`` (whole sentences, or word-boundary pieces of one
    longer than the budget) and ``chunks`` (runs of them). Every sentence lies inside a chunk."""

    sentences: list[Chunk]
    chunks: list[Chunk]
    sentence_tokens: tuple[int, ...] = ()  # model tokens of each sentence

    @property
    def tokens(self) -> int:
        """Model tokens of the article's text, each counted once."""
        return sum(self.sentence_tokens)

    def sentence_homes(self) -> list[int]:
        """For each sentence, the first chunk that holds it (chunks overlap by a sentence)."""
        homes, c = [], 0
        for s in self.sentences:
            while not (self.chunks[c].start <= s.start and s.end <= self.chunks[c].end):
                c += 1
            homes.append(c)
        return homes


def segment_article(article: Article, count_tokens: Callable[[str], int], max_tokens: int = MAX_TOKENS,
                    overlap_tokens: int = OVERLAP_TOKENS) -> Segmented:
    text = article.text
    chunks: list[Chunk] = []
    sentences: list[Chunk] = []
    counts: list[int] = []
    for span_s, span_e in article.content_spans:
        units: list[tuple[int, int, int]] = []  # (start, end, tokens)
        for s, e in split_sentences(text, span_s, span_e):
            n = count_tokens(text[s:e])
            if n > max_tokens:
                units.extend((ps, pe, count_tokens(text[ps:pe])) for ps, pe in _cut_long(text, s, e, count_tokens, max_tokens))
            else:
                units.append((s, e, n))
        sentences.extend(Chunk(s, e) for s, e, _ in units)
        counts.extend(n for _, _, n in units)
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and (j == i or total + units[j][2] <= max_tokens):
                total += units[j][2]
                j += 1
            chunks.append(Chunk(units[i][0], units[j - 1][1]))
            if j >= len(units):
                break
            # Start the next chunk with the last sentence of this one when it is short, so a fact
            # stated across a sentence boundary is whole in at least one chunk.
            i = j - 1 if j - 1 > i and units[j - 1][2] <= overlap_tokens else j
    return Segmented(sentences, chunks, tuple(counts))
