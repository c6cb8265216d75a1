"""Matching keys with an offset map back to the raw text, sentence spans, lexical terms, language."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.persian import ZWNJ, detect_language, normalize, normalize_text, split_sentences, terms, words


# ---------------------------------------------------------------- normalize: the key


@pytest.mark.parametrize("raw, key", [
    ("ك", "ک"),              # Arabic kaf
    ("ي", "ی"),              # Arabic yeh
    ("ى", "ی"),              # alef maksura
    ("كتاب", "کتاب"),
    ("دیپلماتيك", "دیپلماتیک"),
])
def test_yeh_and_kaf_unified(raw, key):
    assert normalize(raw).key == key


def test_persian_and_arabic_indic_digits_become_ascii():
    persian = "".join(chr(0x06F0 + i) for i in range(10))
    arabic = "".join(chr(0x0660 + i) for i in range(10))
    assert normalize(persian).key == "0123456789"
    assert normalize(arabic).key == "0123456789"
    assert normalize("۱۹ اپریل ۲۰۲۵").key == "19 اپریل 2025"


def test_diacritics_and_tatweel_dropped():
    assert normalize("مُحَمَّد").key == "محمد"
    assert normalize("کـــتاب").key == "کتاب"
    assert normalize("مُـحـمّد").key == normalize("محمد").key


def test_zwnj_dropped():
    assert normalize(f"می{ZWNJ}روم").key == "میروم"
    assert normalize(f"اسلام{ZWNJ}آباد").key == normalize("اسلامآباد").key


def test_whitespace_runs_collapse_and_latin_casefolds():
    assert normalize("  Hello \t\n  WORLD  ").key == "hello world"


def test_normalize_text_is_the_key():
    s = "كتاب ۱۲"
    assert normalize_text(s) == normalize(s).key == "کتاب 12"


# ---------------------------------------------------------------- normalize: the offset map


def test_offsets_point_at_the_raw_characters():
    raw = "مُحَمَّد كـتاب ۱۲"
    n = normalize(raw)
    assert len(n.offsets) == len(n.key)
    assert n.raw_len == len(raw)
    for k, o in zip(n.key, n.offsets):
        # Every key character comes from the raw character it points at.
        if k == " ":
            assert raw[o].isspace()
        else:
            assert k in normalize(raw[o]).key


@pytest.mark.parametrize("raw, word", [
    ("وزیر امور خارجه پاکستان در كوالالامپور سخنراني کرد.", "كوالالامپور"),
    ("وزیر امور خارجه پاکستان در كوالالامپور سخنراني کرد.", "سخنراني"),
    ("در تاریخ ۱۹ اپریل ۲۰۲۵ به کابل رفت", "۲۰۲۵"),
    ("مُحَمَّد رسولِ خدا", "مُحَمَّد"),
    (f"او به اسلام{ZWNJ}آباد بازگشت", f"اسلام{ZWNJ}آباد"),
    ("The  Foreign   MINISTER spoke", "MINISTER"),
])
def test_raw_span_maps_a_key_match_back_to_the_original_word(raw, word):
    n = normalize(raw)
    needle = normalize(word).key
    i = n.key.find(needle)
    assert i >= 0, (n.key, needle)
    s, e = n.raw_span(i, i + len(needle))
    assert word in raw[s:e]
    # and not much more than the word: no neighbouring words are swallowed
    assert raw[s:e].strip() == word


def test_raw_span_rejects_bad_spans():
    n = normalize("abc")
    with pytest.raises(ValueError):
        n.raw_span(2, 2)
    with pytest.raises(ValueError):
        n.raw_span(0, 4)


def test_words_give_raw_spans():
    raw = "وزیر خارجه  پاكستان، گفت"
    ws = words(raw)
    assert [w for w, _, _ in ws] == ["وزیر", "خارجه", "پاکستان", "گفت"]
    for w, s, e in ws:
        assert normalize(raw[s:e]).key == w


# ---------------------------------------------------------------- terms


def test_islamabad_spellings_share_a_term():
    solid = set(terms("اسلامآباد"))
    spaced = set(terms("اسلام آباد"))
    zwnj = set(terms(f"اسلام{ZWNJ}آباد"))
    assert ZWNJ == "\u200c"
    shared = solid & spaced & zwnj
    assert shared, (solid, spaced, zwnj)
    assert "اسلاماباد" in shared


@pytest.mark.parametrize("plural", [f"کتاب{ZWNJ}ها", "کتابها", "کتاب ها", f"کتاب{ZWNJ}های", f"کتاب{ZWNJ}هایی"])
def test_a_plural_meets_its_singular(plural):
    assert "کتاب" in terms(f"{plural} تازه")


@pytest.mark.parametrize("word", ["ایران", "دفتر", "تهران", "اطلاعات", "ماها"])
def test_only_plural_suffixes_are_stripped(word):
    # other endings are parts of many stems; a stem keeps at least three letters
    assert terms(word) == [word]


def test_terms_drop_stopwords_unless_asked():
    t = terms("the city of Kabul")
    assert "kabul" in t and "city" in t
    assert "the" not in t and "of" not in t
    assert "the" in terms("the city", stopwords=True)


# ---------------------------------------------------------------- sentences


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize("end", [".", "!", "?", "؟"])
def test_sentence_ends(end):
    text = f"جمله اول{end} جمله دوم{end} جمله سوم"
    assert _sentences(text) == [f"جمله اول{end}", f"جمله دوم{end}", "جمله سوم"]


def test_newline_ends_a_sentence():
    assert _sentences("خط اول بدون نقطه\nخط دوم\r\nخط سوم") == ["خط اول بدون نقطه", "خط دوم", "خط سوم"]


def test_semicolon_and_comma_do_not_split():
    text = "به گزارش خبرگزاری معمار؛ اسحاق دار، وزیر خارجه، سخنرانی کرد."
    assert _sentences(text) == [text]


def test_guillemet_quotation_kept_whole():
    text = "او گفت: «من یک روز در کابل بودم. این سفر مهم بود!» سپس رفت. جمله بعد."
    assert _sentences(text) == ["او گفت: «من یک روز در کابل بودم. این سفر مهم بود!» سپس رفت.", "جمله بعد."]


def test_decimal_point_does_not_split():
    assert _sentences("رشد 3.5 درصد بود. بعدی") == ["رشد 3.5 درصد بود.", "بعدی"]
    assert _sentences("The rate was 3.5 percent. Next") == ["The rate was 3.5 percent.", "Next"]


def test_sentence_spans_are_raw_offsets_with_a_range():
    text = "عنوان\n\nجمله یک. جمله دو؟ پایان"
    start = text.index("جمله")
    spans = split_sentences(text, start, len(text))
    assert [text[s:e] for s, e in spans] == ["جمله یک.", "جمله دو؟", "پایان"]
    assert all(s >= start for s, _ in spans)


def test_punctuation_only_is_not_a_sentence():
    assert split_sentences("... !!! ؟؟") == []
    assert split_sentences("   \n\n ") == []


# ---------------------------------------------------------------- language


@pytest.mark.parametrize("text, lang", [
    ("In which city did Ishaq Dar speak?", "en"),
    ("اسحاق دار در کدام شهر سخنرانی کرد؟", "fa"),
    ("اسحاق دار in Kuala Lumpur کوالالامپور سخنرانی", "fa"),
    ("What did اسحاق say about the Taliban government?", "en"),
    ("12345 ?!", "en"),
])
def test_detect_language(text, lang):
    assert detect_language(text) == lang


# ---------------------------------------------------------------- properties

_ALPHABET = st.one_of(
    st.sampled_from(list("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیكيىةأإآؤئءًٌٍَُِّْـ")),
    st.sampled_from(list("abcXYZ0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩")),
    st.sampled_from(list(".!?؟«»،؛:\"'()…\n\r\t ") + [ZWNJ, "\u200d", "\u200f", "\ufeff", "\u00a0"]),
    st.characters(),  # any unicode (hypothesis excludes lone surrogates by default)
)
TEXT = st.text(alphabet=_ALPHABET, max_size=300)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_normalize_offsets_property(raw):
    n = normalize(raw)
    assert len(n.offsets) == len(n.key)
    assert n.raw_len == len(raw)
    assert all(0 <= o < len(raw) for o in n.offsets)
    assert all(a <= b for a, b in zip(n.offsets, n.offsets[1:]))
    assert not n.key.startswith(" ") and not n.key.endswith(" ")
    assert "  " not in n.key
    for i in range(len(n.key)):
        s, e = n.raw_span(i, i + 1)
        assert 0 <= s < e <= len(raw)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_split_sentences_property(text):
    spans = split_sentences(text)
    prev_end = 0
    for s, e in spans:
        assert 0 <= prev_end <= s < e <= len(text)
        piece = text[s:e]
        assert piece == piece.strip()
        assert piece.strip()
        prev_end = e
    # every letter or digit of the text lands in some sentence (nothing real is lost)
    covered = set()
    for s, e in spans:
        covered.update(range(s, e))
    for i, ch in enumerate(text):
        if ch.isalnum():
            assert i in covered, (i, ch, spans)


@settings(max_examples=150, deadline=None)
@given(TEXT, st.integers(0, 300), st.integers(0, 300))
def test_split_sentences_subrange_property(text, a, b):
    start, end = sorted((min(a, len(text)), min(b, len(text))))
    for s, e in split_sentences(text, start, end):
        assert start <= s < e <= end
        assert text[s:e] == text[s:e].strip()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["اسلام", "آباد", "کابل", "پاکستان", "دار", "Kabul", "city"]), min_size=1,
                max_size=6))
def test_terms_independent_of_zwnj_vs_solid_joins(ws):
    # Writing the words solid (no separator) or with ZWNJ yields the same single key.
    solid = "".join(ws)
    zwnj = ZWNJ.join(ws)
    assert normalize(solid).key == normalize(zwnj).key
    assert terms(solid) == terms(zwnj)


def test_initials_and_dotted_abbreviations_do_not_split():
    # PersianQA's Harry Potter article: "جی.کی. رولینگ" had been cut after "کی." into two sentences.
    fa = "هری پاتر مجموعه‌ای از هفت رمان فانتزی نوشتهٔ جی.کی. رولینگ، نویسندهٔ بریتانیایی است. جمله بعد."
    assert _sentences(fa) == [fa[:fa.index(" جمله بعد")], "جمله بعد."]
    assert _sentences("در سال ۵۰۰ ق.م. ساخته شد. بعدی.") == ["در سال ۵۰۰ ق.م. ساخته شد.", "بعدی."]
    assert _sentences("Written by J. K. Rowling. Next one.") == ["Written by J. K. Rowling.", "Next one."]
    assert _sentences("He moved to the U.S. in 1990. Then.") == ["He moved to the U.S. in 1990.", "Then."]


def test_a_sentence_may_still_end_with_an_abbreviation_or_a_capital():
    assert _sentences("In the U.S. The end.") == ["In the U.S.", "The end."]
    assert _sentences("This is plan A. Next sentence.") == ["This is plan A.", "Next sentence."]
    assert _sentences("او به خانه رفت. بعد آمد.") == ["او به خانه رفت.", "بعد آمد."]
    assert _sentences("پایان با ق.م.") == ["پایان با ق.م."]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_the_fast_key_is_the_key_with_offsets(text):
    """normalize_text (str.translate, used for every term in the index) gives normalize's key."""
    from rag.persian import normalize, normalize_text

    assert normalize_text(text) == normalize(text).key
