"""Every tuning weight of retrieval and of the answer step, in one frozen object.

``rag eval --set NAME=VALUE`` and ``RAG(..., config=...)`` override them; nothing else in the code
holds a scoring constant. How each was chosen is in README ("Answer quality") and
bench/results/ (eval.md, calibration.md, reader.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


def _by_lang(fa: float, en: float) -> Mapping[str, float]:
    return MappingProxyType({"fa": fa, "en": en})


STRICTNESS = ("strict", "balanced", "lenient")


@dataclass(frozen=True)
class Config:
    # --- retrieval (rag.retrieval)
    candidates: int = 50             # passages taken from each side before fusion
    lexical_weight: float = 0.45     # lexical side of the fusion, before scaling by coverage
    sentence_candidates: int = 100   # nearest sentences whose passages join the candidates
    sentence_weight: float = 0.5     # share of the best sentence's cosine in a passage's dense score
    rrf_k: int = 60                  # reciprocal rank fusion's constant (fusion="rrf")
    # the lexical side matches the question's rarest terms holding at most this many passages
    # together: a bound on a question's cost in a big archive (never reached on the dev sets)
    lexical_postings: int = 20_000

    # --- quotes by meaning (rag.answer; what ranks sentences before the reader reads them)
    candidate_passages: int = 4      # passages whose sentences may be quoted
    w_passage: float = 0.7           # the passage's own meaning score
    w_lexical: float = 0.1           # share of the question's non-title terms in the sentence
    w_focus: float = 0.5             # cosine with the question's focus (without its title words)
    # "related": the cosine confidence (best sentence's cosine + conf_passage × its passage's score +
    # conf_lexical × term share + conf_distinct × how far it stands out). Below related_below nothing
    # retrieved is about the question: a plain refusal, no evidence.
    conf_passage: float = 1.0
    conf_lexical: float = 0.15
    conf_distinct: Mapping[str, float] = field(default_factory=lambda: _by_lang(1.0, 0.0))
    related_below: Mapping[str, float] = field(default_factory=lambda: _by_lang(1.79, 1.57))
    max_quotes: int = 3
    quote_margin: float = 0.15       # further quotes score within this of the best (cosine scale)

    # --- the reader (rag.reader): reads the best sentences by meaning, decides and ranks
    reader_candidates: int = 5       # sentences it reads per question (5 did best held out of 5-12)
    # the meaning scores that choose what it reads use the question through its question adapter
    question_adapter: bool = True
    reader_blend: float = 24.0       # weight of the meaning score beside the reader's logit (bench/calibrate.py)
    # weight of the cosine confidence (its distance from related_below) beside the best logit in
    # the abstention decision: P(answer) = sigmoid(best logit + reader_related × (related − related_below));
    # it keeps off-topic questions out, most of all English ones (flat cross-language cosines)
    reader_related: Mapping[str, float] = field(default_factory=lambda: _by_lang(8.0, 64.0))
    # P(answer) under which the answer step abstains, by question language: wrongly abstaining on at
    # most 5% of the held-out answerable questions, a margin below the lowest one kept (bench/calibrate.py)
    answer_below: Mapping[str, float] = field(default_factory=lambda: _by_lang(0.1757, 0.2119))
    # strictness (the app's "answer only when sure … show closest evidence"): "balanced" decides on
    # answer_below; "strict" and "lenient" on their own thresholds: at most 10% / 2% of the held-out
    # answerable questions wrongly abstained (bench/results/answers.md)
    strictness: str = "balanced"
    answer_below_strict: Mapping[str, float] = field(default_factory=lambda: _by_lang(0.3597, 0.5641))
    answer_below_lenient: Mapping[str, float] = field(default_factory=lambda: _by_lang(0.077, 0.0))
    # --- the constraint check (rag.constraints): the question's titles, names, numbers, months and
    # rare terms must be in the best quote's neighbourhood, or the answer becomes the closest evidence
    check_constraints: bool = True
    # a Persian question's word is a rare term when log(1 + passages / (df + 0.5)) reaches this
    rare_idf: float = float("inf")
    lenient_ignores: tuple[str, ...] = ("term",)  # kinds of constraint that "lenient" lets pass
    reader_margin: float = 4.0       # further quotes within this much of the best (logit + blend scale)
    evidence_quotes: int = 2         # quotes shown under a graded refusal

    # --- loading (rag.articles): a single .txt/.md file's modification time may give the year of a
    # date its text writes without one; off, since a copied or unpacked file's time says nothing
    file_time_years: bool = False

    # --- reports that disagree (rag.answer): a read sentence of another article that shares this
    # share of a quote's words (numbers aside) but states other numbers or dates is cited beside it
    disagree_overlap: float = 0.6
    max_disagreeing: int = 2

    def __post_init__(self) -> None:
        if self.strictness not in STRICTNESS:
            raise ValueError(f"unknown strictness {self.strictness!r}: use one of {', '.join(STRICTNESS)}")

    def replace(self, **changes) -> "Config":
        """A copy with ``changes``; a per-language value is given as ``{"fa": x, "en": y}``, or one
        number for both."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        out = {}
        for k, v in changes.items():
            if k not in fields:
                raise ValueError(f"unknown setting {k!r}; known: {', '.join(fields)}")
            if isinstance(getattr(self, k), Mapping):
                v = MappingProxyType(dict(v) if isinstance(v, Mapping) else {"fa": float(v), "en": float(v)})
            out[k] = v
        return dataclasses.replace(self, **out)

    def with_settings(self, settings: list[str]) -> "Config":
        """``NAME=VALUE`` strings (``rag eval --set``); VALUE is JSON (a number, or {"fa": .., "en": ..})."""
        changes = {}
        for s in settings:
            name, sep, value = s.partition("=")
            if not sep:
                raise ValueError(f"expected NAME=VALUE, got {s!r}")
            try:
                changes[name.strip()] = json.loads(value)
            except ValueError:
                raise ValueError(f"the value of {name} is not a number or JSON: {value!r}") from None
        return self.replace(**changes)


DEFAULT = Config()
