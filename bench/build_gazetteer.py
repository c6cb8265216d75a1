"""Build rag/data/gazetteer.json: the bilingual names the constraint check (rag.constraints) matches an
English question's names against Persian text with, and a Persian question's against the article.

    python bench/build_gazetteer.py

Sources: countries, languages and cities (time-zone exemplar cities) from CLDR through babel, in
English, Persian (fa) and Dari (fa_AF); nationality adjectives, a few regional cities, organisations
and office titles written by the team below (the Persian and Dari forms news writes). Agencies come
from rag.agencies at run time, so they are not copied here. babel is needed only to rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path

from babel import Locale

OUT = Path(__file__).resolve().parent.parent / "rag" / "data" / "gazetteer.json"

# English and Persian forms of a country's adjective (the Persian one is the country name + «ی»,
# which the matcher accepts by itself; listed here only where news writes another form).
NATIONALITIES = {
    "AF": (["Afghan", "Afghans"], ["افغان", "افغانستانی"]), "PK": (["Pakistani", "Pakistanis"], []),
    "IR": (["Iranian", "Iranians", "Persian"], []), "CN": (["Chinese"], []),
    "US": (["American", "Americans", "U.S.", "US", "USA", "America"], ["آمریکا", "امریکا", "آمریکایی", "امریکایی"]),
    "GB": (["British", "Britain", "UK", "U.K.", "England", "English"], ["انگلیس", "انگلستان", "انگلیسی"]),
    "RU": (["Russian", "Russians"], []), "IN": (["Indian", "Indians"], ["هندی", "هندوستان"]),
    "TR": (["Turkish", "Turkey", "Turk", "Turks"], ["ترکیه", "ترک"]), "SA": (["Saudi", "Saudis", "Saudi Arabian"], ["عربستان"]),
    "DE": (["German", "Germans"], []), "FR": (["French"], []), "IQ": (["Iraqi", "Iraqis"], []),
    "TJ": (["Tajik", "Tajiks", "Tajikistani"], ["تاجیک", "تاجک"]), "UZ": (["Uzbek", "Uzbeks"], ["ازبک"]),
    "TM": (["Turkmen"], ["ترکمن"]), "KZ": (["Kazakh"], ["قزاق"]), "KG": (["Kyrgyz"], ["قرقیز"]),
    "AE": (["Emirati", "UAE", "Emirates"], ["امارات"]), "QA": (["Qatari"], []), "JP": (["Japanese"], ["ژاپنی"]),
    "KR": (["Korean"], ["کره"]), "IL": (["Israeli", "Israelis"], ["اسرائیل", "اسراییل"]), "SY": (["Syrian", "Syrians"], []),
    "LB": (["Lebanese"], []), "EG": (["Egyptian", "Egyptians"], []), "JO": (["Jordanian"], []),
    "KW": (["Kuwaiti"], []), "OM": (["Omani"], []), "BH": (["Bahraini"], []), "YE": (["Yemeni", "Yemenis"], []),
    "AZ": (["Azerbaijani", "Azeri"], ["آذربایجان"]), "AM": (["Armenian", "Armenians"], []), "GE": (["Georgian"], []),
    "UA": (["Ukrainian", "Ukrainians"], ["اوکراین"]), "IT": (["Italian"], []), "ES": (["Spanish"], ["اسپانیا"]),
    "CA": (["Canadian"], []), "AU": (["Australian"], ["استرالیا"]), "ID": (["Indonesian"], []),
    "MY": (["Malaysian"], []), "BD": (["Bangladeshi"], []), "PS": (["Palestinian", "Palestinians", "Palestine"], ["فلسطین"]),
    "LY": (["Libyan"], []), "SD": (["Sudanese"], []), "VE": (["Venezuelan"], []), "BR": (["Brazilian"], []),
}

# Cities news names that CLDR's exemplar cities lack (English forms, Persian/Dari forms).
CITIES = [
    (["Islamabad"], ["اسلام آباد", "اسلامآباد"]), (["Beijing", "Peking"], ["پکن", "بیجینگ"]),
    (["Herat"], ["هرات"]), (["Kandahar"], ["قندهار"]), (["Mazar-i-Sharif", "Mazar-e-Sharif", "Mazar"], ["مزار شریف", "مزارشریف"]),
    (["Jalalabad"], ["جلال آباد", "جلالآباد"]), (["Kunduz"], ["کندز", "قندوز"]), (["Ghazni"], ["غزنی"]),
    (["Bamiyan", "Bamyan"], ["بامیان"]), (["Helmand"], ["هلمند"]), (["Badakhshan"], ["بدخشان"]), (["Balkh"], ["بلخ"]),
    (["Nangarhar"], ["ننگرهار"]), (["Panjshir"], ["پنجشیر"]), (["Takhar"], ["تخار"]), (["Baghlan"], ["بغلان"]),
    (["Samangan"], ["سمنگان"]), (["Faryab"], ["فاریاب"]), (["Parwan"], ["پروان"]), (["Logar"], ["لوگر"]),
    (["Peshawar"], ["پیشاور"]), (["Lahore"], ["لاهور"]), (["Quetta"], ["کویته"]), (["Torkham"], ["تورخم"]),
    (["Mashhad", "Mashad"], ["مشهد"]), (["Isfahan", "Esfahan"], ["اصفهان"]), (["Shiraz"], ["شیراز"]),
    (["Tabriz"], ["تبریز"]), (["Qom"], ["قم"]), (["Ahvaz", "Ahwaz"], ["اهواز"]), (["Kerman"], ["کرمان"]),
    (["Yazd"], ["یزد"]), (["Zahedan"], ["زاهدان"]), (["Bandar Abbas"], ["بندرعباس", "بندر عباس"]),
    (["Washington"], ["واشنگتن"]), (["Delhi", "New Delhi"], ["دهلی", "دهلی نو"]), (["Ankara"], ["آنکارا"]),
    (["Geneva"], ["ژنو"]), (["Doha"], ["دوحه"]), (["Abu Dhabi"], ["ابوظبی"]), (["Tehran", "Teheran"], ["تهران"]),
    (["Kabul"], ["کابل"]), (["Moscow"], ["مسکو"]), (["London"], ["لندن"]), (["Paris"], ["پاریس"]),
    (["Vienna"], ["وین"]), (["Brussels"], ["بروکسل"]), (["New York"], ["نیویورک"]), (["Baghdad"], ["بغداد"]),
    (["Riyadh"], ["ریاض"]), (["Kuala Lumpur"], ["کوالالامپور"]), (["Tashkent"], ["تاشکند"]),
    (["Dushanbe"], ["دوشنبه"]), (["Ashgabat"], ["عشق آباد", "عشقآباد"]), (["Astana"], ["آستانه"]),
]

ORGANISATIONS = [
    (["Taliban", "Islamic Emirate"], ["طالبان", "امارت اسلامی"]),
    (["TTP", "Tehreek-e-Taliban", "Tehrik-i-Taliban", "Pakistani Taliban"], ["تحریک طالبان", "تی تی پی"]),
    (["United Nations", "UN", "U.N."], ["سازمان ملل", "ملل متحد"]), (["Security Council"], ["شورای امنیت"]),
    (["NATO"], ["ناتو"]), (["European Union", "EU"], ["اتحادیه اروپا"]),
    (["IAEA", "International Atomic Energy Agency"], ["آژانس بین المللی انرژی اتمی", "آژانس انرژی اتمی"]),
    (["World Bank"], ["بانک جهانی"]), (["IMF", "International Monetary Fund"], ["صندوق بین المللی پول"]),
    (["WHO", "World Health Organization"], ["سازمان جهانی بهداشت", "سازمان صحی جهان"]),
    (["UNICEF"], ["یونیسف"]), (["UNHCR"], ["کمیساریای عالی", "یو ان اچ سی آر"]), (["Red Crescent"], ["هلال احمر"]),
    (["Red Cross", "ICRC"], ["صلیب سرخ"]), (["ISIS", "Daesh", "Islamic State", "ISIL", "ISKP"], ["داعش", "دولت اسلامی"]),
    (["Hamas"], ["حماس"]), (["Hezbollah"], ["حزب الله", "حزبالله"]), (["al-Qaeda", "Al Qaeda", "Qaeda"], ["القاعده"]),
    (["SCO", "Shanghai Cooperation Organisation", "Shanghai Cooperation Organization"], ["سازمان همکاری شانگهای"]),
    (["ASEAN"], ["آسه آن", "آسهآن"]), (["OIC", "Organisation of Islamic Cooperation"], ["سازمان همکاری اسلامی"]),
    (["OPEC"], ["اوپک"]), (["BRICS"], ["بریکس"]), (["IRGC", "Revolutionary Guards", "Revolutionary Guard"], ["سپاه"]),
    (["Pentagon"], ["پنتاگون"]), (["White House"], ["کاخ سفید"]), (["Kremlin"], ["کرملین"]),
]

# Office titles: English forms, Persian/Dari forms. A title's holder (a country, an organisation or a
# city that follows it in Persian, or precedes/follows it in English) is part of the constraint.
TITLES = [
    ("foreign minister", ["foreign minister", "minister of foreign affairs", "foreign secretary", "foreign affairs minister"],
     ["وزیر خارجه", "وزیر امور خارجه"]),
    ("defence minister", ["defence minister", "defense minister", "minister of defence", "minister of defense"],
     ["وزیر دفاع"]),
    ("interior minister", ["interior minister", "minister of interior", "interior secretary", "home minister"],
     ["وزیر کشور", "وزیر داخله", "وزیر امور داخله"]),
    ("health minister", ["health minister", "minister of health", "minister of public health"],
     ["وزیر بهداشت", "وزیر صحت", "وزیر صحت عامه"]),
    ("economy minister", ["economy minister", "finance minister", "minister of economy", "minister of finance"],
     ["وزیر اقتصاد", "وزیر مالیه", "وزیر دارایی"]),
    ("prime minister", ["prime minister", "premier", "PM"], ["نخست وزیر", "نخستوزیر", "صدراعظم", "صدر اعظم"]),
    ("president", ["president"], ["رئیس جمهور", "رئیسجمهور", "رییس جمهور", "رییسجمهور", "ریاست جمهوری"]),
    ("spokesperson", ["spokesman", "spokesperson", "spokeswoman", "spokespeople"], ["سخنگو", "سخنگوی"]),
    ("ambassador", ["ambassador", "envoy"], ["سفیر", "نماینده ویژه", "فرستاده"]),
    ("governor", ["governor"], ["والی", "استاندار"]), ("mayor", ["mayor"], ["شهردار", "شاروال"]),
    ("supreme leader", ["supreme leader", "leader"], ["رهبر", "امیر"]),
    ("king", ["king", "emir", "monarch"], ["پادشاه", "شاه", "امیر"]),
    ("army chief", ["army chief", "chief of army staff", "military chief"], ["فرمانده ارتش", "رئیس ستاد ارتش"]),
    ("police chief", ["police chief", "police commander"], ["فرمانده پلیس", "قوماندان امنیه", "رئیس پلیس"]),
    ("secretary-general", ["secretary-general", "secretary general"], ["دبیرکل", "دبیر کل"]),
    ("speaker", ["speaker of parliament", "parliament speaker", "speaker"], ["رئیس مجلس", "رئیس پارلمان"]),
    ("minister", ["minister"], ["وزیر"]),
    ("ministry", ["ministry"], ["وزارت"]),
    ("deputy", ["deputy", "vice"], ["معاون"]),
]


def main() -> None:
    en, fa, af = Locale("en"), Locale("fa"), Locale("fa", "AF")
    entities = []
    for code, name in en.territories.items():
        if not code.isalpha() or code in ("ZZ", "EU", "EZ", "UN", "QO"):
            continue
        adj_en, adj_fa = NATIONALITIES.get(code, ([], []))
        forms_fa = sorted({fa.territories.get(code, ""), af.territories.get(code, ""), *adj_fa} - {""})
        entities.append({"kind": "country", "id": code, "en": sorted({name, *adj_en}), "fa": forms_fa})
    seen = set()
    for zone, names in fa.time_zones.items():
        city_fa = names.get("city")
        from babel.dates import get_timezone_location
        try:
            city_en = get_timezone_location(zone, locale="en", return_city=True)
        except Exception:  # noqa: BLE001 (a zone babel cannot place)
            continue
        if city_fa and city_en and city_en not in seen:
            seen.add(city_en)
            entities.append({"kind": "city", "id": city_en, "en": [city_en], "fa": [city_fa]})
    for names_en, names_fa in CITIES:
        if names_en[0] in seen:
            prev = next(e for e in entities if e["kind"] == "city" and e["id"] == names_en[0])
            prev["en"] = sorted(set(prev["en"]) | set(names_en))
            prev["fa"] = sorted(set(prev["fa"]) | set(names_fa))
            continue
        seen.add(names_en[0])
        entities.append({"kind": "city", "id": names_en[0], "en": names_en, "fa": names_fa})
    for code, name in en.languages.items():
        if len(code) == 2 and fa.languages.get(code):
            entities.append({"kind": "language", "id": code, "en": [name], "fa": [fa.languages[code]]})
    for names_en, names_fa in ORGANISATIONS:
        entities.append({"kind": "organisation", "id": names_en[0], "en": names_en, "fa": names_fa})
    titles = [{"id": tid, "en": e, "fa": f} for tid, e, f in TITLES]
    OUT.write_text(json.dumps({
        "source": "CLDR (Unicode Common Locale Data Repository) through babel "
                  f"{__import__('babel').__version__}: territories, languages and time-zone exemplar cities in "
                  "en, fa and fa_AF; nationality adjectives, regional cities, organisations and office titles "
                  "written by the team (bench/build_gazetteer.py)",
        "entities": entities, "titles": titles}, ensure_ascii=False, indent=0), encoding="utf-8")
    print(f"{OUT}: {len(entities)} entities, {len(titles)} titles, {OUT.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
