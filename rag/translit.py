"""Does an English spelling of a name match a Persian word? By consonant skeleton: each Persian
letter becomes the Latin consonant an English spelling uses for it (vowel letters, ع and ء drop
out), each English word loses its vowels the same way (Ishaq Dar: sq dr ~ اسحاق دار: sq dr); غ and ق both as q, which English spells gh or q.

Used by the constraint check (an English question's names against Persian evidence) and by the
LLM path (an English rendering may add no name its Persian quote lacks)."""

from __future__ import annotations

import re

_SKELETON = str.maketrans({
    "ب": "b", "پ": "p", "ت": "t", "ط": "t", "ث": "s", "س": "s", "ص": "s", "ج": "j", "چ": "c", "ح": "", "ه": "",
    "خ": "k", "د": "d", "ذ": "s", "ز": "s", "ض": "s", "ظ": "s", "ر": "r", "ژ": "s", "ش": "s", "غ": "q", "ق": "q",
    "ف": "f", "ک": "k", "ك": "k", "گ": "g", "ل": "l", "م": "m", "ن": "n", "و": "", "ی": "", "ي": "", "ا": "", "آ": "",
    "ع": "", "ء": "", "ئ": "", "ؤ": "", "أ": "", "إ": "", "ة": "", "\u200c": ""})
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")
# Capitalized English words that are not names (sentence starters, titles, days and months).
NOT_NAMES = {"The", "A", "An", "He", "She", "It", "They", "We", "I", "In", "On", "At", "Of", "And", "But", "This",
              "That", "These", "Those", "His", "Her", "Their", "Its", "According", "After", "Before", "Since", "There",
              "When", "While", "If", "As", "For", "From", "With", "To", "By", "Also", "However", "Meanwhile", "No",
              "Officials", "Sources", "Some", "Many", "Our", "Your", "You", "Who", "What", "Why", "How", "Where",
              "Mr", "Ms", "Mrs", "Dr", "Minister", "Foreign",
              "Prime", "Deputy", "President", "Government", "Ministry", "Friday", "Saturday", "Sunday", "Monday",
              "Tuesday", "Wednesday", "Thursday", "January", "February", "March", "April", "May", "June", "July",
              "August", "September", "October", "November", "December", "Islamic", "Emirate", "Republic"}
_PERSIAN_WORD = re.compile(r"[\u0600-\u06ff\u200c]+")


def latin_skeleton(word: str) -> str:
    """The consonants of an English spelling, as a Persian word's skeleton writes them."""
    w = re.sub(r"'s$", "", word.lower())
    for a, b in (("kh", "k"), ("gh", "q"), ("sh", "s"), ("ch", "c"), ("zh", "z"), ("ph", "f"), ("th", "t"),
                 ("ck", "k"), ("x", "ks"), ("w", ""), ("v", ""), ("y", ""), ("h", ""), ("c", "k"), ("z", "s")):
        w = w.replace(a, b)
    w = re.sub(r"g(?=[ei])", "j", w)  # Angeles ~ آنجلس
    return _single("".join(ch for ch in w if ch.isalpha() and ch not in "aeiou'-"))


def _single(sk: str) -> str:
    """Doubled consonants as one: Persian does not write them twice (Mohammad ~ محمد)."""
    return re.sub(r"(.)\1+", r"\1", sk)


def _persian_skeleton(word: str) -> str:
    return _single(re.sub(r"[^a-z]", "", word.translate(_SKELETON).replace("c", "k")))  # s and z one class: Joseph ~ جوزف


def persian_skeletons(text: str) -> set[str]:
    """Skeletons of the Persian words of ``text``, and of each two neighbours read as one (a name
    written as two Persian words and one English one: «اسلام آباد»)."""
    ws = _PERSIAN_WORD.findall(text)
    out = set()
    for i, w in enumerate(ws):
        out.add(_persian_skeleton(w))
        if i + 1 < len(ws):
            out.add(_persian_skeleton(w + ws[i + 1]))
    return {s for s in out if s}


def spelled_in(name: str, skeletons: set[str], loose: bool = False) -> bool:
    """Whether an English ``name`` (one word) matches one of the Persian ``skeletons``: the same
    skeleton, or for three consonants or more a part of one (a name written solid with another:
    «محمدنعیم»). ``loose`` also takes a two-consonant prefix (a rendering's name, rag.llm)."""
    sk = latin_skeleton(name)
    if not sk:
        return False
    if len(sk) < 3:
        return any(sk == s or (loose and s.startswith(sk)) for s in skeletons)
    return any(sk in s or (len(s) >= 3 and s in sk) for s in skeletons)
