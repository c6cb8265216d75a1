"""Answer, show the closest evidence, or refuse: decided here, once, for every face and bench.

The inputs (``DecisionInputs``) are what the answer step measured of a question: the reader's best
logit, the cosine confidence ("related": is anything retrieved about the question at all?) and which
of the question's constraints (rag.constraints) the best quote's neighbourhood lacks. ``decide``
turns them into a verdict under a ``Config``; the benches sweep thresholds by calling it with other
configs on the inputs that ``RAG.ask(..., trace=True)`` records, never by copying it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import Config

ANSWER, EVIDENCE, REFUSE = "answer", "evidence", "refuse"


@dataclass(frozen=True)
class DecisionInputs:
    lang: str
    related: float                     # the cosine confidence of the best sentence
    best_logit: float | None = None    # the reader's best logit (None: no reader)
    missing: tuple[str, ...] = ()      # the question's constraints the best quote's neighbourhood lacks
    missing_kinds: tuple[str, ...] = ()  # their kinds (title, name, number, month, term), in the same order
    missing_idf: tuple[float, ...] = ()  # their IDF in the index (inf but for terms), in the same order
    forced: bool = False               # nothing may be quoted (a negated question with no negative sentence)


@dataclass(frozen=True)
class Decision:
    verdict: str                       # ANSWER, EVIDENCE (graded: closest sentences, marked uncertain) or REFUSE
    confidence: float                  # P(answer) with the reader, else the cosine confidence
    missing: tuple[str, ...] = field(default=())  # named in the answer when they caused the verdict

    @property
    def abstained(self) -> bool:
        return self.verdict != ANSWER


def answer_probability(best_logit: float, related: float, lang: str, cfg: Config) -> float:
    """P(answer): the reader's best logit plus the cosine confidence's margin over ``related_below``
    (which keeps off-topic questions out)."""
    z = best_logit + cfg.reader_related[lang] * (related - cfg.related_below[lang])
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def reader_rank(logit: float, meaning: float, cfg: Config) -> float:
    """What quotes are ranked by once the reader has read them."""
    return logit + cfg.reader_blend * meaning


def threshold(lang: str, cfg: Config) -> float:
    """P(answer) under which the answer step abstains, by the config's strictness."""
    by = {"strict": cfg.answer_below_strict, "balanced": cfg.answer_below, "lenient": cfg.answer_below_lenient}
    return by[cfg.strictness][lang]


def counted(inputs: DecisionInputs, cfg: Config) -> tuple[str, ...]:
    """The missing constraints that count at this strictness (lenient: rare terms do not)."""
    if not cfg.check_constraints:
        return ()
    ignore = set(cfg.lenient_ignores) if cfg.strictness == "lenient" else set()
    idfs = inputs.missing_idf or (math.inf,) * len(inputs.missing)
    return tuple(m for m, k, w in zip(inputs.missing, inputs.missing_kinds, idfs)
                 if k not in ignore and (k != "term" or w >= cfg.rare_idf))


def supported_first(ranked: list, missing_of, kinds_of, idfs_of, lang: str, cfg: Config) -> list:
    """``ranked`` (best first) with the quotes whose neighbourhood holds every constraint that counts
    moved ahead of those that lack one, each group in its order: a quote about someone else is a
    worse quote than the next one about the right person. ``missing_of(x)`` and the others give an
    item's missing constraints, their kinds and IDFs."""
    def lacks(x) -> bool:
        return bool(counted(DecisionInputs(lang, 0.0, None, tuple(missing_of(x)), tuple(kinds_of(x)),
                                           tuple(idfs_of(x))), cfg))
    flags = [lacks(x) for x in ranked]
    return [x for x, f in zip(ranked, flags) if not f] + [x for x, f in zip(ranked, flags) if f]


def decide(inputs: DecisionInputs, cfg: Config) -> Decision:
    related_enough = inputs.related >= cfg.related_below[inputs.lang]
    if inputs.best_logit is None:  # no reader: the cosine confidence decides
        confidence = inputs.related
        sure = related_enough
    else:
        confidence = answer_probability(inputs.best_logit, inputs.related, inputs.lang, cfg)
        sure = confidence >= threshold(inputs.lang, cfg)
    missing = counted(inputs, cfg)
    if sure and not missing and not inputs.forced:
        return Decision(ANSWER, confidence)
    # not sure, or the best quote lacks what the question asks about: the closest sentences as
    # evidence when the passages are about the question, else a plain refusal; what is missing is named
    return Decision(EVIDENCE if related_enough else REFUSE, confidence, missing)
