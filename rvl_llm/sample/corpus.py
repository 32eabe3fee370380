"""A synthetic, deterministic RVL-CDIP-like OCR corpus.

RVL-CDIP's documents come from the tobacco-litigation archives (letters, memos, forms, invoices,
scientific papers, ...) and its OCR text is noisy.  This module writes look-alike documents in the
layout of the RVL-CDIP OCR release: one JSON file per document, named
``{split}_{index:04d}_{label}_aws.json`` and holding ``{"id": "<split>_<index>", "ocr": "<text>"}``.

Every class has its own headers, key words and structured blocks (tables, form fields, reference
lists, ...) mixed into a large shared filler vocabulary, so a small model can learn the classes but
not trivially.  Lengths are roughly log-normal (median about 250 words, a tail up to about 6,000),
about 2% of the documents are empty and a few are whitespace only, and OCR-like noise is added
(character confusions, split and merged words, stray punctuation, odd line breaks).

Everything is driven by :class:`random.Random` instances, never the global generator, so a seed
gives the same bytes on every run.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rvl_llm.labels import RVL_CDIP_CLASSES

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_PER_CLASS: dict[str, int] = {"train": 48, "validation": 8, "test": 8}
NUM_CLASSES = len(RVL_CDIP_CLASSES)
MAX_WORDS = 6000
EMPTY_RATE = 0.02
BLANK_RATE = 0.006
LONG_EVERY = 256
LONG_OFFSET = 6

Lines = list[str]
Rng = random.Random
_T = TypeVar("_T")


def corpus_file_name(split: str, index: int, label: int) -> str:
    """The RVL-CDIP OCR file name of one document, e.g. ``train_0000_13_aws.json``."""
    return f"{split}_{index:04d}_{label}_aws.json"


def parse_corpus_file_name(name: str) -> tuple[str, int, int]:
    """``(split, index, label)`` from a name made by :func:`corpus_file_name`."""
    stem = name.removesuffix(".json")
    parts = stem.split("_")
    if len(parts) != 4 or parts[3] != "aws":
        raise ValueError(f"not an RVL-CDIP OCR file name: {name!r}")
    return parts[0], int(parts[1]), int(parts[2])


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(" ".join(p.split()) for p in text.split("|") if p.strip())


_FILLER = """
the the the the the of of of of and and and to to to a a a in in in is is for for for that
that on on with with as as be be by by this this are are was was it it at at from from or or
will will have have has not an an we we our our which which their they these been were also
all any can may would should could must other such more most some each only than then there
when where what who whom how into about after before during under over between through upon
per within without against among its his her he she them you your us i one two three four
five six seven eight ten first second third new last next same further following above below
year years month months week day days time period date number total level levels rate rates
part parts area areas point points group groups case cases order orders line lines page pages
copy copies note notes letter file files record records report reports review data information
program programs project projects plan plans study studies test tests result results meeting
meetings office offices department division company companies corporation board committee
management manager managers director directors president vice staff member members people
person employee employees customer customers client business industry market markets product
products service services sales cost costs price prices budget fund funds account accounts
payment value amount amounts increase decrease change changes growth support request requests
response question questions issue issues matter matters problem problems action actions effect
effects process system systems method methods analysis evaluation development research work
activity activities operation operations production manufacturing plant facility equipment
material materials quality control standard standards requirement requirements procedure policy
policies position decision agreement contract contracts law legal counsel attorney court state
states federal government public national regional local general special current recent future
previous final early late major minor important significant possible available necessary
additional various several certain particular specific similar different high low large small
long short full open good better best well please thank thanks regarding concerning attached
enclosed discussed received sent provided prepared reviewed approved requested required included
based used made given taken shown noted described reported indicated expected planned proposed
continue continued consider considered include includes provide provides receive review reviewed
discuss develop developed complete completed determine determined establish established identify
prepare submit submitted schedule scheduled confirm confirmed inform informed advise advised
forward forwarded follow follows regard ensure maintain obtain contact call calls write written
ask asked know known believe think feel need needs want make take give see find keep hold
begin show use help try meet expect appear seem remain become bring return report reported
therefore however although because since unless while whether either neither both also still
yet already again often always never usually generally approximately about nearly almost very
much many few less least little greater lower higher larger smaller increased reduced overall
summary background purpose objective objectives scope status update updates comments comment
recommendation recommendations conclusion conclusions attachment attachments enclosure copy
tobacco tobacco cigarette cigarettes cigarette smoking smoking smokers smoker smoke nicotine
filter filters brand brands blend leaf leaves flavor taste package packages pack packs carton
cartons menthol lights regular king size product products consumer consumers marketing
advertising promotion promotions retail retailer retailers distribution wholesale volume share
industry research development scientists scientific health issues regulation tax taxes excise
legislation litigation plaintiffs defendants Institute Council association trade agency agencies
Philip Morris Reynolds Lorillard Brown Williamson American Liggett Richmond Winston-Salem
Louisville Greensboro New York Washington North Carolina Virginia Kentucky
"""

_RARE_FILLER = (
    "café résumé naïve entrée déjà Société Nestlé protégé coöperation 1½ ½ ¼ ¾ — – § ° © ® ™ "
    "“quoted” ‘note’ don’t it’s we’re company’s • · ×"
)

_FIRST_NAMES = _words(
    "John James Robert Michael William David Richard Charles Joseph Thomas Mary Patricia Linda "
    "Barbara Elizabeth Susan Margaret Dorothy Helen Nancy Frank Edward George Kenneth Paul Donald "
    "Ronald Walter Harold Arthur Carol Ruth Sharon Joan Judith Alan Roger Wayne Ernest Gerald"
)
_LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin "
    "Jackson Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill "
    "Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans "
    "Edwards Collins Stewart Morris Rogers Cook Morgan Bell Murphy Bailey Cooper Howard Ward "
    "Cox Kessler Gardner Spears Osdene Dietrich Hoel Seligman Wakeham Fisher Ruder"
)
_TITLES = (
    "Vice President",
    "Director of Research",
    "Manager, Product Development",
    "Senior Scientist",
    "Associate General Counsel",
    "Brand Manager",
    "Assistant to the President",
    "Director, Public Affairs",
    "Regional Sales Manager",
    "Principal Scientist",
    "Controller",
    "Executive Vice President",
)
_COMPANIES = (
    "Philip Morris Incorporated",
    "Philip Morris U.S.A.",
    "R. J. Reynolds Tobacco Company",
    "Lorillard Corporation",
    "Brown & Williamson Tobacco Corporation",
    "The American Tobacco Company",
    "Liggett Group Inc.",
    "The Tobacco Institute",
    "Council for Tobacco Research - U.S.A., Inc.",
    "Covington & Burling",
    "Shook, Hardy & Bacon",
    "Leo Burnett Company, Inc.",
    "Arthur D. Little, Inc.",
    "Battelle Memorial Institute",
)
_CITIES = (
    "Richmond, Virginia 23261",
    "Winston-Salem, North Carolina 27102",
    "New York, New York 10017",
    "Louisville, Kentucky 40232",
    "Greensboro, NC 27420",
    "Washington, D.C. 20006",
    "Durham, NC 27702",
    "Chicago, Illinois 60601",
    "Kansas City, Missouri 64105",
    "Macon, Georgia 31201",
    "Columbus, Ohio 43201",
)
_STREETS = (
    "Park Avenue",
    "Main Street",
    "Commerce Road",
    "Jefferson Davis Highway",
    "Reynolds Boulevard",
    "Eye Street, N.W.",
    "Broad Street",
    "Pennsylvania Avenue",
    "Research Parkway",
)
_BRANDS = (
    "Marlboro",
    "Winston",
    "Salem",
    "Camel",
    "Newport",
    "Kool",
    "Virginia Slims",
    "Merit",
    "Benson & Hedges",
    "Parliament",
    "Doral",
    "Vantage",
    "True",
    "Kent",
    "Pall Mall",
    "Lucky Strike",
    "Viceroy",
)
_MONTHS = _words(
    "January February March April May June July August September October November December"
)
_WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday")
_STRAY = (".", ",", "'", "`", "~", "|", "_", "-", ";", ":", "•", "\u2019", "*", "^", '"')
_BLANKS = (" ", "\n", "  \n ", "\n\n", "\t", " \n\n  ")
_JUNK_LINES = ("' . ~", ", , .", "|||", "_ _ _", "-- -", ".:", "l I", "~~", "■", "• •")


_FILLER_WORDS = _words(_FILLER)


# --------------------------------------------------------------------------------------------
# Small generators of realistic pieces
# --------------------------------------------------------------------------------------------


def _pick(rng: Rng, seq: Sequence[_T]) -> _T:
    """``rng.choice(seq)``, about twice as fast (one call to ``random()``)."""
    return seq[int(rng.random() * len(seq))]


def _randint(rng: Rng, low: int, high: int) -> int:
    """``rng.randint(low, high)``, about three times as fast."""
    return low + int(rng.random() * (high - low + 1))


def _name(rng: Rng) -> str:
    last = _pick(rng, _LAST_NAMES)
    r = rng.random()
    if r < 0.4:
        return f"{_pick(rng, _FIRST_NAMES)} {last}"
    if r < 0.7:
        return f"{_pick(rng, _FIRST_NAMES)[0]}. {_pick(rng, _FIRST_NAMES)[0]}. {last}"
    if r < 0.85:
        return f"{_pick(rng, ('Dr.', 'Mr.', 'Ms.', 'Mrs.'))} {last}"
    return f"{_pick(rng, _FIRST_NAMES)} {_pick(rng, _FIRST_NAMES)[0]}. {last}"


def _year(rng: Rng) -> int:
    return _randint(rng, 1952, 2001)


def _date(rng: Rng) -> str:
    y, m, d = _year(rng), _randint(rng, 1, 12), _randint(rng, 1, 28)
    r = rng.random()
    if r < 0.45:
        return f"{_MONTHS[m - 1]} {d}, {y}"
    if r < 0.7:
        return f"{m}/{d}/{y % 100:02d}"
    if r < 0.8:
        return f"{d} {_MONTHS[m - 1]} {y}"
    if r < 0.9:
        return f"{_MONTHS[m - 1][:3].upper()} {d:02d} {y}"
    return f"{y}-{m:02d}-{d:02d}"


def _money(rng: Rng, low: float = 1.0, high: float = 50000.0) -> str:
    return f"${low * (high / low) ** rng.random():,.2f}"


def _num(rng: Rng, low: float = 1.0, high: float = 100000.0, decimals: int = 0) -> str:
    """A log-uniform number between ``low`` and ``high`` with thousands separators."""
    return f"{low * (high / low) ** rng.random():,.{decimals}f}"


def _phone(rng: Rng) -> str:
    return f"({_pick(rng, (804, 919, 212, 502, 202, 336))}) {_randint(rng, 200, 999)}-" + (
        f"{_randint(rng, 0, 9999):04d}"
    )


def _email_address(rng: Rng) -> str:
    first, last = _pick(rng, _FIRST_NAMES).lower(), _pick(rng, _LAST_NAMES).lower()
    domain = _pick(rng, ("pmusa.com", "rjrt.com", "lorillard.com", "bw.com", "tobacco.org"))
    return f"{first[0]}{last}@{domain}" if rng.random() < 0.5 else f"{first}.{last}@{domain}"


def _bates(rng: Rng) -> str:
    r = rng.random()
    if r < 0.5:
        return str(_randint(rng, 1_000_000_000, 2_099_999_999))
    if r < 0.7:
        return f"{_randint(rng, 10000, 99999)} {_randint(rng, 1000, 9999)}"
    if r < 0.85:
        return f"TI{_randint(rng, 10_000_000, 99_999_999)}"
    return f"{_pick(rng, ('TIMN', 'TIFL', 'CTR', 'LG', 'BW'))} {_randint(rng, 100_000, 999_999)}"


def _address(rng: Rng) -> Lines:
    return [f"{_randint(rng, 1, 9999)} {_pick(rng, _STREETS)}", _pick(rng, _CITIES)]


def _title_case_phrase(rng: Rng, pop: tuple[str, ...], n: int) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in rng.choices(pop, k=n))


def _sentence(rng: Rng, pop: tuple[str, ...], low: int = 5, high: int = 18) -> str:
    words = rng.choices(pop, k=_randint(rng, low, high))
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words) + "."


def _draw_words(rng: Rng, pop: tuple[str, ...], n: int) -> list[str]:
    """``n`` words drawn uniformly from a population of exactly 65,536 entries.

    Two random bytes index one word and ``map`` does the look-ups in C: about three times
    faster than :meth:`random.Random.choices`.
    """
    if n <= 0:
        return []
    return list(map(pop.__getitem__, memoryview(rng.randbytes(2 * n)).cast("H")))


_SENTENCE_ENDS = (". ", ". ", ". ", ". ", ". ", ". ", ". ", ", ", "; ", ": ", "? ", ".  ", ".. ")


def _prose(rng: Rng, pop: tuple[str, ...], n: int, phrases: tuple[str, ...] = ()) -> str:
    """About ``n`` words of sentences wrapped into OCR-like lines, with class phrases mixed in.

    Words and separators are built as two lists and interleaved by slice assignment, and the
    random choices per sentence and per line come from one block of random bytes: the Python
    work is a few operations per sentence and per line rather than per word.
    """
    if n <= 0:
        return ""
    words = _draw_words(rng, pop, n)
    if phrases:
        for _ in range(1 + n // 80):
            words[int(rng.random() * n)] = phrases[int(rng.random() * len(phrases))]
    rb = rng.randbytes(n + 8)
    k = 0
    seps = [" "] * n
    i = 0
    while i < n:
        w = words[i]
        words[i] = w[:1].upper() + w[1:]
        i += 4 + rb[k] % 17
        if i < n:
            seps[i - 1] = _SENTENCE_ENDS[rb[k + 1] % 13]
        k += 2
    width = 5 + rb[k] % 8
    j = width + rb[k + 1] % 5
    k += 2
    while j < n:
        seps[j - 1] = seps[j - 1].rstrip(" ") + ("\n\n" if rb[k] < 31 else "\n")
        j += width + rb[k + 1] % 5
        k += 2
    seps[-1] = "."
    out = seps * 2  # interleave words and separators by slice assignment (C speed)
    out[::2] = words
    out[1::2] = seps
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Per-class content
# --------------------------------------------------------------------------------------------


def _letter_header(rng: Rng) -> Lines:
    lines: Lines = []
    if rng.random() < 0.8:
        company = _pick(rng, _COMPANIES)
        lines += [company.upper() if rng.random() < 0.5 else company, *_address(rng)]
        if rng.random() < 0.5:
            lines.append(f"Telephone {_phone(rng)}")
        lines.append("")
    lines += [_date(rng), ""]
    if rng.random() < 0.7:
        lines += [_name(rng), _pick(rng, _TITLES), _pick(rng, _COMPANIES), *_address(rng), ""]
    if rng.random() < 0.3:
        lines += [f"Re: {_title_case_phrase(rng, _LETTER_KW, _randint(rng, 2, 5))}", ""]
    salutation = _pick(rng, ("Dear", "Dear", "Dear", "My dear"))
    last = _pick(rng, _LAST_NAMES)
    lines.append(f"{salutation} {_pick(rng, ('Mr.', 'Dr.', 'Ms.', 'Mrs.'))} {last}:")
    return lines


def _letter_block(rng: Rng) -> Lines:
    return [_pick(rng, _LETTER_PHRASES), ""]


def _letter_footer(rng: Rng) -> Lines:
    lines = [
        "",
        _pick(
            rng,
            (
                "Sincerely,",
                "Sincerely yours,",
                "Very truly yours,",
                "Best regards,",
                "Yours truly,",
                "Cordially,",
            ),
        ),
        "",
        _name(rng),
        _pick(rng, _TITLES),
    ]
    if rng.random() < 0.4:
        lines.append(f"cc: {_name(rng)}")
    if rng.random() < 0.3:
        lines.append(_pick(rng, ("Enclosure", "Enclosures", "Attachment")))
    if rng.random() < 0.4:
        lines.append(f"{_pick(rng, _LAST_NAMES)[:3].upper()}:{_pick(rng, _LAST_NAMES)[:2].lower()}")
    return lines


def _form_header(rng: Rng) -> Lines:
    title = _pick(rng, _FORM_TITLES)
    lines = [title if rng.random() < 0.8 else title.title()]
    if rng.random() < 0.6:
        lines.append(
            f"Form {_pick(rng, ('No.', '#'))} {_pick(rng, ('RJR', 'PM', 'BW', 'TI', 'LOR'))}"
            f"-{_randint(rng, 100, 9999)} (Rev. {_randint(rng, 1, 12)}/{_randint(rng, 60, 99)})"
        )
    if rng.random() < 0.4:
        lines.append("PLEASE PRINT OR TYPE")
    return lines


def _form_field(rng: Rng) -> str:
    label = _pick(rng, _FORM_FIELDS)
    r = rng.random()
    if r < 0.35:
        value = "_" * _randint(rng, 4, 20)
    elif r < 0.55:
        value = _name(rng)
    elif r < 0.7:
        value = _date(rng)
    elif r < 0.85:
        value = _num(rng, 1, 99999)
    else:
        value = _money(rng)
    return f"{label}: {value}"


def _form_block(rng: Rng) -> Lines:
    lines: Lines = []
    for _ in range(_randint(rng, 2, 7)):
        r = rng.random()
        if r < 0.6:
            lines.append("  ".join(_form_field(rng) for _ in range(_randint(rng, 1, 3))))
        elif r < 0.8:
            marks = [_pick(rng, ("[ ]", "[X]", "[ ]", "( )", "□", "☐")) for _ in range(2)]
            lines.append(f"{_pick(rng, _FORM_QUESTIONS)} {marks[0]} Yes {marks[1]} No")
        elif r < 0.9:
            lines.append(
                f"Signature {'_' * _randint(rng, 8, 25)} Date {'_' * _randint(rng, 5, 12)}"
            )
        else:
            lines.append(f"Approved by: {_name(rng)}  Account No. {_randint(rng, 1000, 99999)}")
    return lines


def _form_footer(rng: Rng) -> Lines:
    return [
        _pick(
            rng,
            (
                "WHITE - ORIGINAL   YELLOW - ACCOUNTING   PINK - FILE COPY",
                "DISTRIBUTION: Original - Payroll; Copy - Employee",
                "RETURN COMPLETED FORM TO PERSONNEL DEPARTMENT",
                f"Form {_randint(rng, 100, 999)}-{_randint(rng, 1, 99)} Printed in U.S.A.",
            ),
        )
    ]


def _email_headers(rng: Rng) -> Lines:
    day, month = _pick(rng, _WEEKDAYS), _pick(rng, _MONTHS)
    hour = _randint(rng, 1, 12)
    sent = (
        f"{day}, {month} {_randint(rng, 1, 28):02d}, {_randint(rng, 1995, 2002)} "
        f"{hour}:{_randint(rng, 0, 59):02d} {_pick(rng, ('AM', 'PM'))}"
    )
    subject = _title_case_phrase(rng, _EMAIL_SUBJECT_WORDS, _randint(rng, 2, 6))
    prefix = _pick(rng, ("", "", "RE: ", "FW: ", "Re: "))
    if rng.random() < 0.7:
        lines = [f"From: {_pick(rng, _LAST_NAMES)}, {_pick(rng, _FIRST_NAMES)}", f"Sent: {sent}"]
        lines.append(
            "To: "
            + "; ".join(
                f"{_pick(rng, _LAST_NAMES)}, {_pick(rng, _FIRST_NAMES)}"
                for _ in range(_randint(rng, 1, 4))
            )
        )
        if rng.random() < 0.5:
            lines.append(f"Cc: {_email_address(rng)}")
        lines.append(f"Subject: {prefix}{subject}")
    else:
        lines = [
            f"From: {_email_address(rng)}",
            f"To: {_email_address(rng)}",
            f"Date: {sent}",
            f"Subject: {prefix}{subject}",
        ]
    return lines


def _email_header(rng: Rng) -> Lines:
    return [*_email_headers(rng), ""]


def _email_block(rng: Rng) -> Lines:
    if rng.random() < 0.4:
        return ["", "-----Original Message-----", *_email_headers(rng), ""]
    return [_pick(rng, _EMAIL_PHRASES), ""]


def _email_footer(rng: Rng) -> Lines:
    lines = ["", _pick(rng, ("Thanks,", "Thanks", "Regards,", "Best,", "-")), _name(rng)]
    if rng.random() < 0.3:
        lines.append(_phone(rng))
    if rng.random() < 0.2:
        lines.append(
            "This message and any attachments are confidential and intended solely "
            "for the addressee."
        )
    return lines


def _handwritten_header(rng: Rng) -> Lines:
    r = rng.random()
    if r < 0.3:
        return [
            _pick(rng, ("WHILE YOU WERE OUT", "PHONE MESSAGE", "Telephone Message")),
            f"To {_pick(rng, _LAST_NAMES)}",
            f"of {_pick(rng, _COMPANIES).split()[0]}",
        ]
    if r < 0.6:
        return [
            f"{_pick(rng, ('From the desk of', 'Note to', 'To:', 'Memo to'))} "
            f"{_pick(rng, _FIRST_NAMES)}",
            "",
        ]
    return [f"{_pick(rng, _FIRST_NAMES)} -"]


def _handwritten_block(rng: Rng) -> Lines:
    return [_pick(rng, _HANDWRITTEN_PHRASES)]


def _handwritten_footer(rng: Rng) -> Lines:
    return [
        _pick(rng, ("Thx", "thanks", "- J", "Call me", "pls call", "FYI"))
        + _pick(rng, ("", " -", "!", f" {_pick(rng, _FIRST_NAMES)[0]}"))
    ]


def _ad_header(rng: Rng) -> Lines:
    brand = _pick(rng, _BRANDS)
    lines = [_pick(rng, _AD_SLOGANS).format(brand=brand, BRAND=brand.upper())]
    if rng.random() < 0.6:
        lines.append(
            f"{brand.upper()} {_pick(rng, ('LIGHTS', 'KINGS', '100s', 'MENTHOL', 'ULTRA LIGHTS'))}"
        )
    return lines


def _ad_block(rng: Rng) -> Lines:
    brand = _pick(rng, _BRANDS)
    lines = [
        _pick(rng, _AD_PHRASES).format(
            brand=brand, BRAND=brand.upper(), price=_money(rng, 0.25, 20.0)
        )
    ]
    if rng.random() < 0.3:
        lines.append(
            f"• {_pick(rng, _AD_PHRASES).format(brand=brand, BRAND=brand.upper(), price='50¢')}"
        )
    return lines


def _ad_footer(rng: Rng) -> Lines:
    lines = [_pick(rng, _SURGEON_GENERAL)]
    if rng.random() < 0.6:
        tar, nic = _randint(rng, 1, 17), _randint(rng, 1, 12) / 10
        lines.append(f'{tar} mg. "tar", {nic:.1f} mg. nicotine av. per cigarette by FTC method.')
    return lines


def _sci_report_header(rng: Rng) -> Lines:
    lines = [
        _pick(
            rng,
            (
                "RESEARCH AND DEVELOPMENT REPORT",
                "TECHNICAL REPORT",
                "PROJECT REPORT",
                "R&D REPORT",
                "Research Report",
                "LABORATORY REPORT",
                "PROGRESS REPORT",
            ),
        )
    ]
    lines.append(f"Report No. {_year(rng)}-{_randint(rng, 1, 400):03d}")
    if rng.random() < 0.7:
        lines.append(f"Title: {_title_case_phrase(rng, _SCI_KW, _randint(rng, 3, 8))}")
    if rng.random() < 0.7:
        lines.append(f"Authors: {_name(rng)}, {_name(rng)}")
    lines.append(f"Date: {_date(rng)}")
    if rng.random() < 0.4:
        lines.append(f"Project No. {_randint(rng, 1000, 9999)}   Distribution: {_name(rng)}")
    return [*lines, "", _pick(rng, ("SUMMARY", "ABSTRACT", "OBJECTIVE", "Summary"))]


def _sci_table(rng: Rng, caption: str) -> Lines:
    cols = rng.sample(_SCI_COLUMNS, _randint(rng, 2, 4))
    lines = [
        f"{caption} {_randint(rng, 1, 12)}. "
        f"{_title_case_phrase(rng, _SCI_KW, _randint(rng, 3, 7))}",
        "Sample   " + "   ".join(cols),
    ]
    for _ in range(_randint(rng, 2, 8)):
        sample = _pick(
            rng,
            (
                f"{_pick(rng, 'ABCDEFGH')}-{_randint(rng, 1, 99)}",
                f"Control {_randint(rng, 1, 4)}",
                _pick(rng, _BRANDS),
                f"{_randint(rng, 1, 20)} mm",
                f"Code {_randint(rng, 100, 999)}",
            ),
        )
        values = "   ".join(f"{rng.uniform(0.01, 40):.{_randint(rng, 1, 3)}f}" for _ in cols)
        lines.append(f"{sample}   {values}")
    return lines


def _sci_report_block(rng: Rng) -> Lines:
    r = rng.random()
    if r < 0.35:
        return ["", _pick(rng, _SCI_REPORT_SECTIONS)]
    if r < 0.75:
        return _sci_table(rng, _pick(rng, ("Table", "TABLE")))
    return [
        f"{_pick(rng, ('Figure', 'Fig.', 'FIGURE'))} {_randint(rng, 1, 9)}. "
        f"{_title_case_phrase(rng, _SCI_KW, _randint(rng, 3, 8))}"
    ]


def _sci_report_footer(rng: Rng) -> Lines:
    return [
        "",
        _pick(rng, ("CONCLUSIONS", "RECOMMENDATIONS", "Conclusion")),
        _sentence(rng, _SCI_FILLER),
        f"{_name(rng)}  {_date(rng)}",
    ]


def _sci_pub_header(rng: Rng) -> Lines:
    title = _title_case_phrase(rng, _SCI_PUB_KW, _randint(rng, 5, 12))
    authors = ", ".join(_name(rng) for _ in range(_randint(rng, 1, 4))) + f" and {_name(rng)}"
    lines = [title, authors]
    if rng.random() < 0.7:
        lines.append(f"{_pick(rng, _AFFILIATIONS)}, {_pick(rng, _CITIES)}")
    if rng.random() < 0.5:
        lines.append(
            f"{_pick(rng, _JOURNALS)} {_randint(rng, 10, 99)}: {_randint(rng, 1, 999)}-"
            f"{_randint(rng, 1000, 1999)} ({_year(rng)})"
        )
    return [*lines, "", _pick(rng, ("Abstract", "ABSTRACT", "Summary", "SUMMARY"))]


def _reference(rng: Rng, number: int) -> str:
    authors = ", ".join(
        f"{_pick(rng, _LAST_NAMES)}, {_pick(rng, _FIRST_NAMES)[0]}."
        for _ in range(_randint(rng, 1, 3))
    )
    title = _title_case_phrase(rng, _SCI_PUB_KW, _randint(rng, 4, 10))
    return (
        f"{number}. {authors} {title}. {_pick(rng, _JOURNALS)} {_randint(rng, 1, 120)}: "
        f"{_randint(rng, 1, 999)}-{_randint(rng, 1000, 1999)}, {_year(rng)}."
    )


def _sci_pub_block(rng: Rng) -> Lines:
    r = rng.random()
    if r < 0.4:
        return ["", _pick(rng, _PUB_SECTIONS)]
    if r < 0.6:
        return _sci_table(rng, "Table")
    return [
        f"({_pick(rng, _LAST_NAMES)} et al., {_year(rng)}; {_pick(rng, _LAST_NAMES)} and "
        f"{_pick(rng, _LAST_NAMES)}, {_year(rng)}) (p < 0.0{_randint(rng, 1, 5)})"
    ]


def _sci_pub_footer(rng: Rng) -> Lines:
    start = _randint(rng, 1, 30)
    return [
        "",
        _pick(rng, ("References", "REFERENCES", "Literature Cited")),
        *(_reference(rng, start + i) for i in range(_randint(rng, 3, 25))),
    ]


def _spec_header(rng: Rng) -> Lines:
    lines = [
        _pick(
            rng,
            (
                "SPECIFICATION",
                "MATERIAL SPECIFICATION",
                "PRODUCT SPECIFICATION",
                "PURCHASE SPECIFICATION",
                "Specification",
                "CIGARETTE SPECIFICATION",
            ),
        )
    ]
    lines.append(
        f"Spec. No. {_randint(rng, 1, 9)}-{_randint(rng, 100, 999)}-{_randint(rng, 1, 99):02d}"
        f"   Rev. {_randint(rng, 0, 9)}"
    )
    if rng.random() < 0.6:
        lines.append(f"Supersedes: {_date(rng)}   Effective Date: {_date(rng)}")
    if rng.random() < 0.5:
        lines.append(f"Material: {_pick(rng, _SPEC_MATERIALS)}")
    return lines


def _spec_block(rng: Rng) -> Lines:
    lines: Lines = []
    section = f"{_randint(rng, 1, 9)}.{_randint(rng, 1, 9)}"
    for i in range(_randint(rng, 2, 7)):
        prop, unit, low, high = _pick(rng, _SPEC_PROPS)
        nominal = rng.uniform(low, high)
        tol = nominal * rng.uniform(0.01, 0.1)
        r = rng.random()
        if r < 0.6:
            lines.append(f"{section}.{i + 1} {prop}: {nominal:.2f} ± {tol:.2f} {unit}")
        elif r < 0.8:
            lines.append(
                f"{section}.{i + 1} {prop}  Minimum {nominal - tol:.1f}  "
                f"Maximum {nominal + tol:.1f} {unit}"
            )
        else:
            lines.append(f"{section}.{i + 1} {_pick(rng, _SPEC_SHALL)}")
    return lines


def _spec_footer(rng: Rng) -> Lines:
    return [
        "",
        f"Approved: {_name(rng)}   {_pick(rng, ('Quality Assurance', 'Purchasing', 'R&D'))}"
        f"   Date: {_date(rng)}",
        f"Page {_randint(rng, 1, 3)} of {_randint(rng, 3, 6)}",
    ]


def _folder_header(rng: Rng) -> Lines:
    r = rng.random()
    lines = []
    if r < 0.5:
        lines.append(_pick(rng, ("FILE", "FILE:", "File", "FOLDER", "CONFIDENTIAL FILE")))
    lines.append(
        _pick(rng, _FOLDER_LABELS).format(
            name=_pick(rng, _LAST_NAMES).upper(),
            y1=_year(rng),
            y2=_year(rng),
            n=_randint(rng, 1, 40),
        )
    )
    return lines


def _folder_block(rng: Rng) -> Lines:
    return [
        _pick(rng, _FOLDER_LABELS).format(
            name=_pick(rng, _LAST_NAMES).upper(),
            y1=_year(rng),
            y2=_year(rng),
            n=_randint(rng, 1, 40),
        )
    ]


def _folder_footer(rng: Rng) -> Lines:
    return [
        _pick(
            rng,
            (
                f"Box {_randint(rng, 1, 300)}",
                f"Vol. {_pick(rng, ('I', 'II', 'III', 'IV'))}",
                "CONFIDENTIAL",
                f"Folder {_randint(rng, 1, 9)} of {_randint(rng, 9, 20)}",
                _bates(rng),
            ),
        )
    ]


def _news_header(rng: Rng) -> Lines:
    lines = []
    if rng.random() < 0.7:
        lines.append(f"{_pick(rng, _NEWSPAPERS)}  {_pick(rng, _WEEKDAYS)}, {_date(rng)}")
    headline = _title_case_phrase(rng, _NEWS_FILLER, _randint(rng, 4, 10))
    lines.append(headline.upper() if rng.random() < 0.5 else headline)
    if rng.random() < 0.6:
        lines.append(f"By {_pick(rng, _FIRST_NAMES)} {_pick(rng, _LAST_NAMES)}")
        if rng.random() < 0.5:
            lines.append(_pick(rng, ("Staff Writer", "Associated Press", "Special to The Times")))
    dateline = _pick(
        rng,
        (
            "WASHINGTON",
            "NEW YORK",
            "RICHMOND, Va.",
            "WINSTON-SALEM, N.C.",
            "LOUISVILLE, Ky.",
            "ATLANTA",
            "BOSTON",
        ),
    )
    lines.append(f"{dateline} {_pick(rng, ('(AP) —', '—', '-', '(UPI) -'))}")
    return lines


def _news_block(rng: Rng) -> Lines:
    r = rng.random()
    if r < 0.6:
        return [
            f"\u201c{_sentence(rng, _NEWS_FILLER, 5, 14)}\u201d "
            f"said {_name(rng)}, {_pick(rng, _NEWS_SPEAKERS)}."
        ]
    if r < 0.8:
        return [
            _pick(rng, ("Continued on Page ", "See TOBACCO, Page A", "Please see "))
            + str(_randint(rng, 2, 30))
        ]
    return [f'"{_sentence(rng, _NEWS_FILLER, 4, 10)}" according to {_pick(rng, _NEWS_SPEAKERS)}.']


def _news_footer(rng: Rng) -> Lines:
    return [
        _pick(
            rng,
            (
                "(Copyright 1988 The New York Times)",
                "Copyright © The Associated Press",
                f"Page {_pick(rng, 'ABCD')}{_randint(rng, 1, 30)}",
                "###",
                "-30-",
            ),
        )
    ]


def _budget_header(rng: Rng) -> Lines:
    y = _year(rng)
    lines = [
        _pick(
            rng,
            (
                f"{y} BUDGET",
                f"FISCAL YEAR {y} BUDGET REQUEST",
                f"{y} OPERATING BUDGET",
                "BUDGET SUMMARY",
                f"FY {y % 100:02d} BUDGET",
                "PROPOSED BUDGET",
                f"Budget {y}-{y + 1}",
            ),
        )
    ]
    if rng.random() < 0.7:
        lines.append(f"Department: {_pick(rng, _DEPARTMENTS)}")
    if rng.random() < 0.6:
        lines.append(_pick(rng, ("(in thousands of dollars)", "($000)", "(Dollars in Millions)")))
    cols = _pick(
        rng,
        (
            f"Actual {y - 1}   Budget {y}   Variance   %",
            "Q1   Q2   Q3   Q4   Total",
            f"{y - 1}   {y}   Change",
            "Budget   Actual   Over/(Under)",
        ),
    )
    return [*lines, "", f"Account   {cols}"]


def _budget_block(rng: Rng) -> Lines:
    lines: Lines = []
    for _ in range(_randint(rng, 3, 9)):
        n_cols = _randint(rng, 2, 5)
        values = []
        for _ in range(n_cols):
            v = _num(rng, 1, 99999, _pick(rng, (0, 0, 1)))
            values.append(f"({v})" if rng.random() < 0.1 else v)
        if rng.random() < 0.3:
            values.append(f"{rng.uniform(-30, 60):.1f}%")
        lines.append(f"{_pick(rng, _BUDGET_ITEMS)}   {'   '.join(values)}")
    total = _pick(rng, ("TOTAL", "Total", "SUBTOTAL", "TOTAL EXPENSES", "Total Operating Costs"))
    lines.append(f"{total}   {_num(rng, 1000, 999999)}   {_num(rng, 1000, 999999)}")
    return lines


def _budget_footer(rng: Rng) -> Lines:
    return [
        "",
        f"Prepared by {_name(rng)} {_date(rng)}",
        _pick(
            rng,
            (
                "Variance explanation attached.",
                "Figures are preliminary.",
                "Excludes capital expenditures.",
                "",
            ),
        ),
    ]


def _invoice_header(rng: Rng) -> Lines:
    lines = [
        _pick(rng, ("INVOICE", "INVOICE", "Invoice", "STATEMENT / INVOICE", "TAX INVOICE")),
        _pick(rng, _COMPANIES),
        *_address(rng),
    ]
    lines.append(f"Invoice No. {_randint(rng, 10000, 999999)}   Invoice Date: {_date(rng)}")
    if rng.random() < 0.6:
        lines.append(
            f"Customer No. {_randint(rng, 1000, 99999)}   P.O. No. {_randint(rng, 1000, 99999)}"
        )
    lines += ["Bill To:", _pick(rng, _COMPANIES), *_address(rng)]
    if rng.random() < 0.4:
        lines += ["Ship To:", *_address(rng)]
    if rng.random() < 0.5:
        lines.append(_pick(rng, ("Terms: Net 30 days", "Terms: 2% 10, Net 30", "Due on receipt")))
    return [*lines, "", "Qty   Description   Unit Price   Amount"]


def _invoice_block(rng: Rng) -> Lines:
    lines: Lines = []
    for _ in range(_randint(rng, 1, 6)):
        qty = _randint(rng, 1, 500)
        price = math.exp(rng.uniform(0, math.log(2000)))
        item = _pick(rng, _INVOICE_ITEMS).format(brand=_pick(rng, _BRANDS))
        lines.append(f"{qty}   {item}   ${price:,.2f}   ${qty * price:,.2f}")
    return lines


def _invoice_footer(rng: Rng) -> Lines:
    sub = math.exp(rng.uniform(math.log(20), math.log(90000)))
    tax = sub * _pick(rng, (0.0, 0.04, 0.045, 0.06))
    lines = [
        "",
        f"Subtotal   ${sub:,.2f}",
        f"Sales Tax   ${tax:,.2f}",
        f"{_pick(rng, ('TOTAL AMOUNT DUE', 'Amount Due', 'TOTAL DUE', 'Balance Due'))}   "
        f"${sub + tax:,.2f}",
    ]
    if rng.random() < 0.5:
        lines.append(
            _pick(rng, ("Please remit to:", "Make checks payable to:"))
            + " "
            + _pick(rng, _COMPANIES)
        )
    if rng.random() < 0.4:
        lines.append("Thank you for your business!")
    return lines


def _presentation_header(rng: Rng) -> Lines:
    title = _title_case_phrase(rng, _PRESENTATION_FILLER, _randint(rng, 2, 6))
    lines = [title.upper() if rng.random() < 0.6 else title]
    if rng.random() < 0.6:
        lines += [f"Presented to {_pick(rng, _DEPARTMENTS)}", _date(rng)]
    return [*lines, ""]


def _presentation_block(rng: Rng) -> Lines:
    heading = _pick(rng, _PRESENTATION_HEADINGS)
    lines = ["", heading.upper() if rng.random() < 0.7 else heading]
    bullet = _pick(rng, ("•", "-", "o", "*", "•", "■", "—"))
    pop = _PRESENTATION_FILLER
    for _ in range(_randint(rng, 2, 6)):
        words = rng.choices(pop, k=_randint(rng, 2, 8))
        words[0] = words[0][:1].upper() + words[0][1:]
        line = f"{bullet} {' '.join(words)}"
        if rng.random() < 0.25:
            line += f" {rng.uniform(-10, 60):+.1f}%" if rng.random() < 0.5 else f" ({_year(rng)})"
        lines.append(line)
    if rng.random() < 0.3:
        lines.append(f"Slide {_randint(rng, 2, 40)}")
    return lines


def _presentation_footer(rng: Rng) -> Lines:
    return ["", _pick(rng, ("QUESTIONS?", "Q & A", "Next Steps", "THANK YOU", "Discussion"))]


def _questionnaire_header(rng: Rng) -> Lines:
    lines = [
        _pick(
            rng,
            (
                "QUESTIONNAIRE",
                "CONSUMER SURVEY",
                "Smoker Questionnaire",
                "PRODUCT TEST QUESTIONNAIRE",
                "SURVEY",
                "Questionnaire",
            ),
        )
    ]
    if rng.random() < 0.6:
        lines.append(
            f"Respondent No. {'_' * _randint(rng, 4, 8)}   Interviewer: {'_' * _randint(rng, 4, 8)}"
        )
    if rng.random() < 0.7:
        lines.append(_pick(rng, _QUESTIONNAIRE_INSTRUCTIONS))
    return [*lines, ""]


def _questionnaire_block(rng: Rng) -> Lines:
    number = _randint(rng, 1, 60)
    question = _pick(rng, _QUESTIONS).format(brand=_pick(rng, _BRANDS))
    lines = [f"{_pick(rng, ('Q', 'Q.', '', 'Question '))}{number}. {question}"]
    r = rng.random()
    if r < 0.35:
        lines.append("Strongly agree  1  2  3  4  5  Strongly disagree")
    elif r < 0.6:
        lines.append("  ".join(f"{i + 1} {opt}" for i, opt in enumerate(_pick(rng, _ANSWER_SETS))))
    elif r < 0.8:
        lines.append(
            f"( ) Yes   ( ) No   ( ) Don't know{_pick(rng, ('', '   SKIP TO Q' + str(number + 2)))}"
        )
    else:
        lines.append("_" * _randint(rng, 10, 40))
    return lines


def _questionnaire_footer(rng: Rng) -> Lines:
    return [
        "",
        _pick(
            rng,
            (
                "Thank you for your cooperation.",
                "THANK YOU FOR PARTICIPATING",
                "Please return this questionnaire in the enclosed envelope.",
                "END OF INTERVIEW",
            ),
        ),
    ]


def _resume_header(rng: Rng) -> Lines:
    lines = [
        _pick(
            rng,
            (
                "RESUME",
                "CURRICULUM VITAE",
                "BIOGRAPHICAL SKETCH",
                "Resume",
                "Curriculum Vitae",
                "BIOGRAPHICAL DATA",
            ),
        ),
        f"{_pick(rng, _FIRST_NAMES)} {_pick(rng, _FIRST_NAMES)[0]}. {_pick(rng, _LAST_NAMES)}",
    ]
    if rng.random() < 0.6:
        lines += [*_address(rng), _phone(rng)]
    if rng.random() < 0.5:
        lines.append(f"Born: {_date(rng)}   Citizenship: U.S.A.")
    return [*lines, ""]


def _resume_block(rng: Rng) -> Lines:
    section = _pick(rng, _RESUME_SECTIONS)
    lines = ["", section]
    for _ in range(_randint(rng, 1, 5)):
        y1 = _year(rng)
        r = rng.random()
        if section.upper().startswith("EDUCATION") or r < 0.25:
            lines.append(
                f"{_pick(rng, _DEGREES)}, {_pick(rng, _FIELDS)}, {_pick(rng, _UNIVERSITIES)}, {y1}"
            )
        elif r < 0.75:
            end = _pick(rng, ("present", "Present", str(y1 + _randint(rng, 1, 9))))
            lines.append(f"{y1} - {end}  {_pick(rng, _TITLES)}, {_pick(rng, _COMPANIES)}")
        else:
            lines.append(_reference(rng, _randint(rng, 1, 40)))
    return lines


def _resume_footer(rng: Rng) -> Lines:
    return [
        "",
        _pick(
            rng,
            (
                "REFERENCES: Available upon request",
                "References available on request.",
                "PERSONAL: Married, two children",
                f"Revised {_date(rng)}",
            ),
        ),
    ]


def _memo_header(rng: Rng) -> Lines:
    lines = [
        _pick(
            rng,
            (
                "MEMORANDUM",
                "MEMORANDUM",
                "INTEROFFICE MEMORANDUM",
                "Memorandum",
                "INTER-OFFICE CORRESPONDENCE",
                "MEMO",
                "CONFIDENTIAL MEMORANDUM",
            ),
        )
    ]
    if rng.random() < 0.3:
        lines.insert(0, _pick(rng, _COMPANIES))
    fields = [
        f"TO: {_name(rng)}",
        f"FROM: {_name(rng)}",
        f"DATE: {_date(rng)}",
        f"{_pick(rng, ('RE:', 'SUBJECT:', 'Subject:', 'Re:'))} "
        f"{_title_case_phrase(rng, _MEMO_FILLER, _randint(rng, 2, 6))}",
    ]
    if rng.random() < 0.3:
        fields = [f.title() if i < 3 else f for i, f in enumerate(fields)]
    if rng.random() < 0.3:
        fields.insert(2, f"cc: {_name(rng)}")
    return [*lines, "", *fields, ""]


def _memo_block(rng: Rng) -> Lines:
    return [_pick(rng, _MEMO_PHRASES), ""]


def _memo_footer(rng: Rng) -> Lines:
    lines = [
        f"{_pick(rng, _LAST_NAMES)[0]}{_pick(rng, _LAST_NAMES)[0]}"
        f"{_pick(rng, ('/', ':'))}{_pick(rng, _LAST_NAMES)[:2].lower()}"
    ]
    if rng.random() < 0.4:
        lines.append(f"cc: {_name(rng)}, {_name(rng)}")
    if rng.random() < 0.3:
        lines.append("Attachment")
    return ["", *lines]


# Class vocabularies and phrase banks -------------------------------------------------------

_LETTER_KW = _words("""
Dear Sincerely letter enclosed enclosing pleased appreciate appreciated grateful kindly regards
regret thank writing wrote reply response courtesy invitation opportunity visit hospitality
inquiry interest assistance cooperation correspondence acknowledge confirm arrangements
gentlemen sir madam personally warmest truly cordially honored delighted hope trust assure
""")
_LETTER_PHRASES = _phrases("""
Thank you for your letter of last week. | I am pleased to enclose a copy of the report you
requested. | Please do not hesitate to call me if you have any questions. | I look forward to
hearing from you. | With best personal regards, | It was a pleasure meeting with you. | We
appreciate your interest in our company. | I am writing to confirm the arrangements we discussed.
| Enclosed please find the materials you requested. | Thank you again for your assistance.
""")
_FORM_TITLES = _phrases("""
APPLICATION FOR EMPLOYMENT | EXPENSE REPORT | REQUEST FOR CHECK | TRAVEL AUTHORIZATION |
PURCHASE REQUISITION | PERSONNEL ACTION FORM | SAMPLE REQUEST FORM | PROJECT AUTHORIZATION |
CHECK REQUEST | TRANSMITTAL FORM | REQUEST FOR PAYMENT | ROUTING SLIP | CHANGE OF ADDRESS FORM |
RECORDS RETENTION FORM | VOUCHER
""")
_FORM_FIELDS = _phrases("""
Name | Name (Last, First, M.I.) | Date | Department | Dept. No. | Social Security No. | Employee
No. | Address | City | State | Zip | Telephone | Account No. | Cost Center | Amount | Payee |
Purpose | Date Required | Requested by | Approved by | Signature | Title | Location | Ext. | Vendor
No. | Check No. | Budget Code | Total | Period Ending | Sex | Date of Birth | Position
""")
_FORM_QUESTIONS = _phrases("""
Check one: | Are you a U.S. citizen? | Is this a new account? | Receipts attached? | Prepaid? |
Previously employed by the company? | Taxable? | Check if applicable:
""")
_FORM_KW = _words("""
form application applicant requested requisition authorization approval approved signature
print type check box complete completed field fields blank applicable voucher payee receipt
receipts routing retention copy original duplicate initial initials employee number code
""")
_EMAIL_KW = _words("""
email e-mail message messages sent forwarded forward reply replied subject attached attachment
attachments thread list lists inbox online web website internet server link password fyi asap
thanks cc bcc recipients distribution original conference call voicemail database spreadsheet
""")
_EMAIL_SUBJECT_WORDS = _EMAIL_KW + _words("meeting update draft review status call agenda follow")
_EMAIL_PHRASES = _phrases("""
Please see the attached. | Let me know if you have any questions. | Can we discuss this on the call
tomorrow? | I have forwarded your message to the group. | See below. | Thanks for the quick
response. | Please review and send me your comments by Friday. | FYI - see the note below.
""")
_HANDWRITTEN_KW = _words("""
pls thx call me re fyi ok see attached talk asap note tomorrow tues weds thurs fri mon per
discussed copy back ?? -> + w/ w/o approx info mtg tel no. urgent
""")
_HANDWRITTEN_PHRASES = _phrases("""
pls call me | thx! | see me re this | ok per our talk | FYI - | need by Fri | call back tomorrow
| w/ copy to file | ?? | -> see attached | tel. 555-1212 | approx 3 pm | talk to J. | re: mtg
""")
_AD_SLOGANS = _phrases("""
INTRODUCING NEW {BRAND} | Come to where the flavor is. | Alive with pleasure! {brand} | {BRAND}.
THE TASTE THAT SATISFIES. | You've got what it takes. {brand} | Try {brand} today! | {BRAND} -
America's best tasting low tar | NOW! {BRAND} LIGHTS | SPECIAL OFFER | FREE GIFT OFFER | Get the
taste. Get {brand}. | {brand}: a whole new experience
""")
_AD_PHRASES = _phrases("""
Save {price} on your next purchase of {brand}. | FREE with two packs of {brand} | Limited time
offer. | Mail this coupon today! | Offer good while supplies last. Limit one per customer. |
Available in King Size and 100's, Filter and Menthol. | Smooth, rich taste. | Low tar. Great
taste. | Only {price} a carton! | NEW LOOK. SAME GREAT TASTE. | Coupon expires soon. | Retailer:
we will redeem this coupon for face value plus 8¢ handling.
""")
_AD_KW = _words("""
new free offer save coupon taste flavor smooth rich mild satisfying pleasure refreshing fresh
lights ultra kings menthol filter special limited gift premium quality style great best enjoy
introducing discover experience value price sale style America's favorite
""")
_SURGEON_GENERAL = _phrases("""
SURGEON GENERAL'S WARNING: Smoking Causes Lung Cancer, Heart Disease, Emphysema, And May
Complicate Pregnancy. | SURGEON GENERAL'S WARNING: Quitting Smoking Now Greatly Reduces Serious
Risks to Your Health. | SURGEON GENERAL'S WARNING: Cigarette Smoke Contains Carbon Monoxide. |
Warning: The Surgeon General Has Determined That Cigarette Smoking Is Dangerous to Your Health.
""")
_SCI_KW = _words("""
nicotine tar condensate mainstream sidestream smoke carbon monoxide chromatography HPLC GC/MS
samples sample puff puffs filter ventilation ppm mg/cig nitrosamines NNK NNN benzo[a]pyrene
ammonia pH moisture humectant glycerol menthol casing flavorant analysis analytical method
measured measurement concentration concentrations extraction extract solvent calibration
standard deviation mean values determined aerosol particulate TPM FTC yields yield burley
flue-cured oriental reconstituted sheet pyrolysis combustion temperature volatile semivolatile
alkaloids acetaldehyde formaldehyde HCN phenols catechol test experiment experimental laboratory
procedure data results observed significant sensory panel evaluation filtration efficiency
""")
_SCI_COLUMNS = _words("Nicotine TPM CO Tar Puffs pH Moisture% Ammonia NNK Yield Ventilation% RTD")
_SCI_REPORT_SECTIONS = _phrases("""
INTRODUCTION | EXPERIMENTAL | METHODS | RESULTS | RESULTS AND DISCUSSION | DISCUSSION |
CONCLUSIONS | RECOMMENDATIONS | BACKGROUND | Experimental Procedure | Results | FUTURE WORK
""")
_PUB_KW = _words("""
abstract introduction methods results discussion references et al. journal vol. pp. mice rats
hamsters carcinogenesis carcinogenic tumor tumors epidemiological epidemiology lung cancer
smokers nonsmokers relative risk confidence interval cohort subjects exposure exposed dose
response statistically significantly incidence mortality pulmonary cardiovascular respiratory
inhalation bioassay mutagenicity Ames in vitro in vivo cells tissue plasma cotinine hypothesis
p< findings literature previously reported correlation regression controls population
""")
_PUB_SECTIONS = _phrases("""
Introduction | INTRODUCTION | Materials and Methods | MATERIALS AND METHODS | Methods | Results
| RESULTS | Discussion | DISCUSSION | Statistical Analysis | Subjects | Acknowledgments
""")
_JOURNALS = _phrases("""
J. Natl. Cancer Inst. | Cancer Res. | Am. J. Epidemiol. | Science | Nature | Lancet | N. Engl.
J. Med. | Food Chem. Toxicol. | Beitr. Tabakforsch. | Toxicol. Appl. Pharmacol. | Tob. Sci. |
Am. Rev. Respir. Dis. | Mutat. Res. | J. Agric. Food Chem.
""")
_AFFILIATIONS = _phrases("""
Department of Pharmacology, University of Kentucky | Department of Biochemistry, Duke University |
Division of Epidemiology, School of Public Health | Philip Morris Research Center | Bowman Gray
School of Medicine | Department of Pathology, Harvard Medical School | Institute for Biological
Research | American Health Foundation
""")
_SPEC_KW = _words("""
specification specifications tolerance tolerances minimum maximum nominal shall conform supplier
vendor material materials dimension dimensions width length weight thickness diameter
circumference porosity permeability basis opacity tensile strength adhesive ink tipping plug wrap
cellulose acetate tow denier paper board carton foil inner frame test method inspection sampling
acceptable defects rejection lot lots revision supersedes effective
""")
_SPEC_MATERIALS = _phrases("""
Cigarette Paper | Tipping Paper | Plug Wrap | Cellulose Acetate Tow | Carton Board | Inner Frame |
Aluminum Foil Laminate | Filter Rods | Polypropylene Film | Hot Melt Adhesive
""")
_SPEC_PROPS: tuple[tuple[str, str, float, float], ...] = (
    ("Circumference", "mm", 16.0, 26.0),
    ("Length", "mm", 20.0, 120.0),
    ("Pressure drop", "mm WG", 40.0, 140.0),
    ("Porosity", "CORESTA units", 20.0, 100.0),
    ("Basis weight", "g/m²", 20.0, 60.0),
    ("Width", "mm", 20.0, 70.0),
    ("Moisture", "%", 3.0, 14.0),
    ("Tensile strength", "kN/m", 1.0, 4.0),
    ("Denier per filament", "dpf", 1.5, 9.0),
    ("Total denier", "", 30000.0, 45000.0),
    ("Opacity", "%", 60.0, 95.0),
    ("Thickness", "in.", 0.01, 0.05),
)
_SPEC_SHALL = _phrases("""
The material shall be free of foreign matter and odor. | Each lot shall be accompanied by a
certificate of analysis. | Samples shall be conditioned at 22°C and 60% RH for 24 hours. | Rolls
shall be wound evenly with no splices. | Test method per CORESTA Recommended Method No. 40. |
Color shall match the approved standard.
""")
_FOLDER_LABELS = _phrases("""
{name} CORRESPONDENCE {y1} - {y2} | {name}, J. | Vol. {n} | BOX {n} | Legal - {name} v. | MINUTES
{y1} | PERSONNEL {name} | {name} FILE | Misc. {y1} | Research Proposals {y1} | Budget {y1} |
CONFIDENTIAL | TIMN {n} | Project {n} | Litigation Files | {name} et al. | Reports {y1}-{y2}
""")
_FOLDER_KW = _words("file folder box vol correspondence misc minutes confidential records index")
_NEWS_KW = _words("""
said says told reported according officials spokesman spokeswoman Congress Senate House
legislation lawsuit lawsuits jury verdict trial court judge ruling ban bans smoking restaurants
airlines passengers public health advocates surgeon general FDA federal state city council vote
voted bill proposal week yesterday today announced statement analysts investors shares stock
newspaper editor readers campaign critics opponents supporters
""")
_NEWSPAPERS = _phrases("""
THE WALL STREET JOURNAL | The New York Times | THE WASHINGTON POST | Richmond Times-Dispatch |
Winston-Salem Journal | USA TODAY | Los Angeles Times | The Courier-Journal | Chicago Tribune
""")
_NEWS_SPEAKERS = _phrases("""
a spokesman for the Tobacco Institute | an industry analyst | a company spokeswoman | the bill's
sponsor | a health official | the plaintiffs' attorney | a federal judge
""")
_BUDGET_KW = _words("""
budget budgeted actual actuals variance forecast projected fiscal FY total subtotal expenses
expense salaries wages benefits travel entertainment overhead capital depreciation allocation
allocated quarter quarterly annual year-to-date YTD cost costs revenue revenues net gross
thousands millions percent increase decrease headcount supplies consulting fees
""")
_BUDGET_ITEMS = _phrases("""
Salaries and Wages | Employee Benefits | Travel and Entertainment | Consulting Fees | Office
Supplies | Rent | Utilities | Depreciation | Advertising | Promotion | Research Grants | Postage |
Telephone | Printing | Equipment | Overhead Allocation | Legal Fees | Contributions | Training |
Meetings | Capital Expenditures | Temporary Help | Subscriptions | Dues and Memberships
""")
_DEPARTMENTS = _phrases("""
Research and Development | Marketing | Public Affairs | Legal | Sales | Finance | Manufacturing |
Corporate Affairs | Scientific Affairs | Product Development | Brand Management | Operations
""")
_INVOICE_KW = _words("""
invoice invoiced billing bill amount due payable remit remittance payment terms net qty quantity
unit price extended subtotal tax shipping freight charges customer order shipped ship balance
statement account credit debit discount prepaid COD vendor purchase
""")
_INVOICE_ITEMS = _phrases("""
Cartons {brand} KS | Printing services | Consulting services rendered | Freight charges | Display
racks | Point-of-sale materials | Laboratory analyses | Professional services | Filter rods (cases)
| Photocopies | Courier service | Sample packs {brand} 100s | Posters | Conference room rental
""")
_PRESENTATION_KW = _words("""
overview agenda objectives objective strategy strategies key findings recommendations next steps
share market positioning target consumer consumers brand brands awareness trial conversion
loyalty volume growth trends opportunities issues implications plan plans timeline status
initiatives programs results performance competitive competition SOM
""")
_PRESENTATION_HEADINGS = _phrases("""
Agenda | Overview | Objectives | Background | Key Findings | Strategy | Recommendations | Next
Steps | Market Overview | Share of Market | Consumer Research | Competitive Situation | Timeline |
Issues | Opportunities | Summary | Implications
""")
_QUESTIONNAIRE_KW = _words("""
questionnaire survey respondent respondents interviewer question questions answer answers circle
check agree disagree strongly neutral rating scale rate often usually sometimes never always
prefer preference brand smoked per day how many which skip continue participate opinion
""")
_QUESTIONNAIRE_INSTRUCTIONS = _phrases("""
Please answer each question by circling the appropriate number. | Check the box that best
describes your opinion. | INTERVIEWER: READ LIST AND RECORD ALL MENTIONS. | Please answer all
questions. Your answers are confidential.
""")
_QUESTIONS = _phrases("""
How many cigarettes do you smoke per day? | Which brand do you smoke most often? | How would you
rate the taste of this cigarette? | Did you like or dislike the product? | Have you ever tried
{brand}? | How old were you when you first started smoking? | Compared to your usual brand, was
this cigarette milder or stronger? | Please indicate your age group. | How likely are you to buy
{brand}? | Do you agree with the following statement?
""")
_ANSWER_SETS: tuple[tuple[str, ...], ...] = (
    ("Less than 10", "10-20", "21-30", "More than 30"),
    ("Excellent", "Very good", "Good", "Fair", "Poor"),
    ("Much milder", "Somewhat milder", "About the same", "Somewhat stronger", "Much stronger"),
    ("18-24", "25-34", "35-49", "50+"),
    ("Definitely would", "Probably would", "Might or might not", "Probably not", "Definitely not"),
)
_RESUME_KW = _words("""
resume education experience employment professional positions degree university college
graduate doctoral postdoctoral fellow fellowship research associate assistant professor
publications honors awards memberships societies born citizenship married references skills
responsibilities responsible supervised managed directed taught courses thesis dissertation
""")
_RESUME_SECTIONS = _phrases("""
EDUCATION | EXPERIENCE | PROFESSIONAL EXPERIENCE | EMPLOYMENT HISTORY | PUBLICATIONS | HONORS AND
AWARDS | PROFESSIONAL SOCIETIES | Education | Experience | Positions Held | Selected Publications
""")
_DEGREES = _phrases("Ph.D. | M.D. | B.S. | M.S. | B.A. | M.B.A. | J.D. | Sc.D. | M.P.H.")
_FIELDS = _phrases("""
Chemistry | Biochemistry | Organic Chemistry | Pharmacology | Toxicology | Chemical Engineering |
Statistics | Marketing | Economics | Biology | Physiology | Analytical Chemistry | Law
""")
_UNIVERSITIES = _phrases("""
University of Virginia | Duke University | University of North Carolina | Virginia Commonwealth
University | University of Kentucky | Ohio State University | University of Wisconsin | Cornell
University | Massachusetts Institute of Technology | Rutgers University | Purdue University
""")
_MEMO_KW = _words("""
memorandum memo to from date re subject cc attached attachment discussed discussion follow-up
advise advised please per request meeting review recommend recommended confidential internal
distribution proposal approve approval status update action items deadline plan
""")
_MEMO_PHRASES = _phrases("""
As we discussed at yesterday's meeting, | Please let me know if you have any questions. |
Attached is a copy of the draft for your review. | This is to confirm our conversation of last
week. | Please advise. | The following summarizes the status of the project. | Your comments
would be appreciated by the end of the week. | As you know,
""")

# Word pools of the block generators (class key words plus filler)
_SCI_FILLER = _SCI_KW + _FILLER_WORDS
_SCI_PUB_KW = _SCI_KW + _PUB_KW
_NEWS_FILLER = _NEWS_KW + _FILLER_WORDS
_PRESENTATION_FILLER = _PRESENTATION_KW + _FILLER_WORDS
_MEMO_FILLER = _MEMO_KW + _FILLER_WORDS

_WEAK_SIBLINGS: dict[int, tuple[int, ...]] = {
    0: (15, 14),
    1: (13, 11),
    2: (15, 0),
    3: (15, 8),
    4: (12, 9),
    5: (6, 7),
    6: (5, 9),
    7: (5, 1),
    8: (3, 1),
    9: (6, 4),
    10: (11, 12),
    11: (10, 1),
    12: (4, 10),
    13: (1, 5),
    14: (0, 6),
    15: (0, 2),
}


@dataclass(frozen=True)
class _ClassSpec:
    median_words: float
    sigma: float
    keywords: tuple[str, ...]
    header: Callable[[Rng], Lines]
    block: Callable[[Rng], Lines]
    footer: Callable[[Rng], Lines]
    p_header: float = 0.85
    p_block: float = 0.2
    p_footer: float = 0.6
    caps_rate: float = 0.02
    noise: float = 0.006
    phrases: tuple[str, ...] = ()
    chunk: int = 160


_SPECS: tuple[_ClassSpec, ...] = (
    _ClassSpec(
        260,
        0.5,
        _LETTER_KW,
        _letter_header,
        _letter_block,
        _letter_footer,
        p_header=0.85,
        p_block=0.15,
        p_footer=0.75,
        phrases=_LETTER_PHRASES,
    ),
    _ClassSpec(
        210,
        0.6,
        _FORM_KW,
        _form_header,
        _form_block,
        _form_footer,
        p_header=0.8,
        p_block=0.75,
        p_footer=0.3,
        caps_rate=0.08,
        noise=0.01,
        chunk=40,
    ),
    _ClassSpec(
        230,
        0.65,
        _EMAIL_KW,
        _email_header,
        _email_block,
        _email_footer,
        p_header=0.9,
        p_block=0.15,
        p_footer=0.6,
        phrases=_EMAIL_PHRASES,
    ),
    _ClassSpec(
        60,
        0.8,
        _HANDWRITTEN_KW,
        _handwritten_header,
        _handwritten_block,
        _handwritten_footer,
        p_header=0.55,
        p_block=0.3,
        p_footer=0.5,
        caps_rate=0.1,
        noise=0.06,
        phrases=_HANDWRITTEN_PHRASES,
        chunk=30,
    ),
    _ClassSpec(
        140,
        0.65,
        _AD_KW,
        _ad_header,
        _ad_block,
        _ad_footer,
        p_header=0.8,
        p_block=0.35,
        p_footer=0.55,
        caps_rate=0.3,
        noise=0.012,
        chunk=60,
    ),
    _ClassSpec(
        340,
        0.6,
        _SCI_KW,
        _sci_report_header,
        _sci_report_block,
        _sci_report_footer,
        p_header=0.8,
        p_block=0.25,
        p_footer=0.4,
    ),
    _ClassSpec(
        540,
        0.6,
        _SCI_PUB_KW,
        _sci_pub_header,
        _sci_pub_block,
        _sci_pub_footer,
        p_header=0.8,
        p_block=0.15,
        p_footer=0.6,
    ),
    _ClassSpec(
        290,
        0.55,
        _SPEC_KW,
        _spec_header,
        _spec_block,
        _spec_footer,
        p_header=0.85,
        p_block=0.55,
        p_footer=0.5,
        caps_rate=0.05,
        chunk=60,
    ),
    _ClassSpec(
        14,
        0.7,
        _FOLDER_KW,
        _folder_header,
        _folder_block,
        _folder_footer,
        p_header=0.8,
        p_block=0.6,
        p_footer=0.6,
        caps_rate=0.2,
        noise=0.02,
        chunk=12,
    ),
    _ClassSpec(
        430,
        0.55,
        _NEWS_KW,
        _news_header,
        _news_block,
        _news_footer,
        p_header=0.8,
        p_block=0.12,
        p_footer=0.3,
    ),
    _ClassSpec(
        260,
        0.55,
        _BUDGET_KW,
        _budget_header,
        _budget_block,
        _budget_footer,
        p_header=0.8,
        p_block=0.8,
        p_footer=0.4,
        caps_rate=0.08,
        chunk=30,
    ),
    _ClassSpec(
        185,
        0.5,
        _INVOICE_KW,
        _invoice_header,
        _invoice_block,
        _invoice_footer,
        p_header=0.85,
        p_block=0.7,
        p_footer=0.7,
        caps_rate=0.06,
        chunk=30,
    ),
    _ClassSpec(
        185,
        0.55,
        _PRESENTATION_KW,
        _presentation_header,
        _presentation_block,
        _presentation_footer,
        p_header=0.75,
        p_block=0.8,
        p_footer=0.3,
        caps_rate=0.1,
        chunk=35,
    ),
    _ClassSpec(
        280,
        0.55,
        _QUESTIONNAIRE_KW,
        _questionnaire_header,
        _questionnaire_block,
        _questionnaire_footer,
        p_header=0.8,
        p_block=0.75,
        p_footer=0.4,
        caps_rate=0.04,
        chunk=60,
    ),
    _ClassSpec(
        350,
        0.45,
        _RESUME_KW,
        _resume_header,
        _resume_block,
        _resume_footer,
        p_header=0.85,
        p_block=0.55,
        p_footer=0.4,
        caps_rate=0.04,
        chunk=80,
    ),
    _ClassSpec(
        250,
        0.55,
        _MEMO_KW,
        _memo_header,
        _memo_block,
        _memo_footer,
        p_header=0.85,
        p_block=0.12,
        p_footer=0.6,
        phrases=_MEMO_PHRASES,
    ),
)
assert len(_SPECS) == NUM_CLASSES

_POPULATION_SIZE = 1 << 16
_POPULATIONS: dict[tuple[int, bool], tuple[str, ...]] = {}


def _population(label: int, strong: bool) -> tuple[str, ...]:
    """The word population of a class: shared filler plus class (and some sibling) key words.

    ``strong`` documents use about 12% class words; weak ones about 4%, plus words of two
    neighbouring classes, so that vocabulary alone does not settle every document.  The
    population is stretched to exactly 65,536 entries for :func:`_draw_words`.
    """
    key = (label, strong)
    pop = _POPULATIONS.get(key)
    if pop is None:
        filler = _FILLER_WORDS * 8 + _words(_RARE_FILLER)
        own = _SPECS[label].keywords
        if strong:
            reps = max(1, round(0.14 * len(filler) / len(own)))
            base = filler + own * reps
        else:
            reps = max(1, round(0.04 * len(filler) / len(own)))
            siblings: tuple[str, ...] = ()
            for other in _WEAK_SIBLINGS[label]:
                siblings += _SPECS[other].keywords
            base = filler + own * reps + siblings
        shuffled = list(base)
        random.Random(f"population/{label}/{strong}").shuffle(shuffled)
        pop = tuple((shuffled * (_POPULATION_SIZE // len(shuffled) + 1))[:_POPULATION_SIZE])
        _POPULATIONS[key] = pop
    return pop


# --------------------------------------------------------------------------------------------
# OCR noise
# --------------------------------------------------------------------------------------------

_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "l": ("1", "I", "|"),
    "1": ("l", "I"),
    "I": ("l", "1"),
    "i": ("l", "1", "í"),
    "O": ("0", "Q"),
    "0": ("O", "o"),
    "o": ("0", "c", "ó"),
    "m": ("rn", "nn"),
    "e": ("c", "é"),
    "c": ("e",),
    "S": ("5", "$"),
    "5": ("S",),
    "B": ("8",),
    "8": ("B", "3"),
    "g": ("q", "9"),
    "h": ("b", "li"),
    "t": ("f", "l"),
    "a": ("o", "e"),
    "u": ("v", "ii"),
    "n": ("h", "ri"),
    "d": ("cl",),
    "w": ("vv",),
    "E": ("F",),
    ",": (".",),
    ".": (",", ""),
}


def _ocr_noise(rng: Rng, text: str, rate: float) -> str:
    """Character-level OCR errors: confusions, merged/split words, stray marks, line breaks."""
    length = len(text)
    k = int(length * rate * rng.uniform(0.3, 1.7))
    if k == 0:
        return text
    rnd = rng.random
    positions = sorted(int(rnd() * length) for _ in range(k))
    out: list[str] = []
    prev = 0
    for p in positions:
        if p < prev:
            continue
        out.append(text[prev:p])
        c = text[p]
        op = rnd()
        if c == "r" and text[p + 1 : p + 2] == "n" and op < 0.7:
            out.append("m")
            prev = p + 2
        elif c in _CONFUSIONS and op < 0.5:
            options = _CONFUSIONS[c]
            out.append(options[int(rnd() * len(options))])
            prev = p + 1
        elif c == " " and op < 0.65:
            prev = p + 1  # merged words
        elif op < 0.7:
            out.append(" ")  # split word
            prev = p
        elif op < 0.8:
            out.append(_STRAY[int(rnd() * len(_STRAY))])
            prev = p
        elif op < 0.87:
            out.append("   " if rnd() < 0.5 else "  ")
            prev = p
        elif op < 0.94:
            out.append("\n")
            prev = p
        else:
            prev = p + 1  # dropped character
    out.append(text[prev:])
    return "".join(out)


def _decorate(rng: Rng, text: str, caps_rate: float) -> str:
    """Line-level OCR effects: ALL-CAPS lines, junk lines, page numbers."""
    lines = text.split("\n")
    rb = rng.randbytes(len(lines))
    caps = int(caps_rate * 256)
    junk = caps + 2 + rb[0] % 6
    out: Lines = []
    for b, line in zip(rb, lines, strict=True):
        if b >= junk:
            out.append(line)
        elif b < caps:
            out.append(line.upper())
        else:
            out.append(_JUNK_LINES[b % len(_JUNK_LINES)] if b & 1 else f"- {2 + b % 37} -")
            out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Documents and files
# --------------------------------------------------------------------------------------------


def _target_words(rng: Rng, spec: _ClassSpec) -> int:
    n = int(math.exp(rng.gauss(math.log(spec.median_words), spec.sigma)))
    if rng.random() < 0.01:
        n *= _randint(rng, 2, 8)  # the odd very long document (bound volumes, transcripts)
    return max(1, min(n, MAX_WORDS))


def generate_document(rng: random.Random, label: int, *, words: int | None = None) -> str:
    """The OCR text of one synthetic document of class ``label`` (0..15), drawn from ``rng``.

    ``words`` forces a length (about that many words, never empty); by default the length is
    drawn from the class's log-normal length distribution, and about 2% of the documents are
    empty and 0.6% whitespace only.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}, got {label}")
    spec = _SPECS[label]
    if words is None:
        r = rng.random()
        if r < EMPTY_RATE:
            return ""
        if r < EMPTY_RATE + BLANK_RATE:
            return _BLANKS[int(rng.random() * len(_BLANKS))]
        target = _target_words(rng, spec)
    else:
        target = max(1, words)
    pop = _population(label, rng.random() < 0.7)

    lines: Lines = []
    if rng.random() < spec.p_header:
        lines += spec.header(rng)
    count = sum(len(line.split()) for line in lines)
    footer = spec.footer(rng) if rng.random() < spec.p_footer else []
    target -= sum(len(line.split()) for line in footer)
    while count < target:
        if rng.random() < spec.p_block:
            block = spec.block(rng)
            count += sum(len(line.split()) for line in block)
            lines += block
        else:
            n = min(target - count, 5 + int(rng.random() * spec.chunk))
            lines.append(_prose(rng, pop, n, spec.phrases))
            count += n
    lines += footer
    if rng.random() < 0.35:
        lines += ["", _bates(rng)]

    text = _decorate(rng, "\n".join(lines), spec.caps_rate)
    if rng.random() < 0.85:
        text = _ocr_noise(rng, text, spec.noise * rng.uniform(0.2, 2.0))
    if rng.random() < 0.2:
        text = text.replace("\n\n", "\n \n")
    return text.strip("\n") if rng.random() < 0.8 else text


def split_documents(split: str, per_class: int, *, seed: int = 0) -> list[tuple[int, int, str]]:
    """``(index, label, text)`` of one split, classes interleaved: label = index % 16.

    Every 256th document from index 6 on (a scientific publication) is a long one of 3,000 to
    6,000 words, so that even a small split holds documents that need truncating.
    """
    rng = random.Random(f"rvl-llm-sample/{seed}/{split}")
    docs: list[tuple[int, int, str]] = []
    for i in range(per_class * NUM_CLASSES):
        label = i % NUM_CLASSES
        words = _randint(rng, 3000, MAX_WORDS) if i % LONG_EVERY == LONG_OFFSET else None
        docs.append((i, label, generate_document(rng, label, words=words)))
    return docs


def write_corpus(
    out_dir: Path, *, per_class: dict[str, int] | None = None, seed: int = 0
) -> dict[str, int]:
    """Write a synthetic RVL-CDIP OCR corpus into ``out_dir``; return the documents per split.

    ``per_class`` maps a split (``train``, ``validation``, ``test``) to its documents per class;
    only the splits it names are written (default: 48/8/8 per class, i.e. 768/128/128).  Each
    split has its own random stream, so changing one split's size leaves the others unchanged.
    Existing files of the same names are overwritten; nothing else in ``out_dir`` is touched.
    """
    sizes = dict(DEFAULT_PER_CLASS if per_class is None else per_class)
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"per_class counts must be >= 0: {sizes}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split in SPLITS:
        if split not in sizes:
            continue
        docs = split_documents(split, sizes[split], seed=seed)
        for index, label, text in docs:
            record = {"id": f"{split}_{index}", "ocr": text}
            path = out_dir / corpus_file_name(split, index, label)
            path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        counts[split] = len(docs)
    return counts


UNLABELLED_PER_KIND = 4  # documents of each input kind `rvl-llm predict` reads


def write_unlabelled(out_dir: Path, *, seed: int = 0) -> int:
    """Documents to label with ``rvl-llm predict``, one input kind each: OCR JSON files named
    with no split or label (``scan-01.json``), a ``.txt`` file, and a ``.jsonl`` file with ids.
    Their classes cycle through the label set; none of them is in the labelled corpus."""
    rng = random.Random(f"rvl-llm-sample/{seed}/unlabelled")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = [generate_document(rng, i % NUM_CLASSES) for i in range(2 * UNLABELLED_PER_KIND + 1)]
    for i, text in enumerate(texts[:UNLABELLED_PER_KIND], start=1):
        record = {"id": f"scan-{i:02d}", "ocr": text}
        (out_dir / f"scan-{i:02d}.json").write_text(json.dumps(record, ensure_ascii=False),
                                                   encoding="utf-8")
    (out_dir / "fax.txt").write_text(texts[UNLABELLED_PER_KIND], encoding="utf-8")
    lines = [json.dumps({"id": f"batch-{i:02d}", "text": text}, ensure_ascii=False)
             for i, text in enumerate(texts[UNLABELLED_PER_KIND + 1 :], start=1)]
    (out_dir / "batch.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(texts)
