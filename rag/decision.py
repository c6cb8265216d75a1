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


def inputs_of(lang: str, related: float, best_logit: float | None, missing: list, forced: bool) -> DecisionInputs:
    """The decision's inputs, with ``missing`` as ``(text, kind, idf)`` of each missing constraint."""
    return DecisionInputs(lang, related, best_logit, tuple(m[0] for m in missing), tuple(m[1] for m in missing),
                          tuple(m[2] for m in missing), forced)


def quotable(ranked: list, score, missing, negative, negated: bool, margin: float, lang: str,
             cfg: Config) -> tuple[list, list]:
    """``(ranked, chosen)``: the read sentences (best first by ``score``) with those whose
    neighbourhood holds every constraint that counts moved ahead of the others within ``margin`` of
    the best (a quote about someone else is worse than the next one about the right person), and
    the ones to quote: within ``margin`` of the first of them, only negative ones (``negative``) for
    a question asked in the negative. ``missing(x)``: ``(text, kind, idf)`` of what x lacks.
    ``compose`` and the calibration bench's replay both choose by this."""
    def lacks(x) -> bool:
        return bool(counted(inputs_of(lang, 0.0, None, missing(x), False), cfg))

    near = [x for x in ranked[:cfg.reader_candidates] if score(x) >= score(ranked[0]) - margin]
    flags = [lacks(x) for x in near]
    group = ranked
    if any(flags) and not all(flags) and flags[0]:  # quoted from among those that hold them
        group = [x for x, f in zip(near, flags) if not f]
        ranked = group + [x for x, f in zip(near, flags) if f] + ranked[len(near):]
    chosen = [x for x in group if score(x) >= score(group[0]) - margin]
    if negated:
        chosen = [x for x in chosen if negative(x)]
    return ranked, chosen


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
