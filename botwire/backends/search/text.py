"""Text as the index sees it: folding, words, what a document is, languages and stems."""

from __future__ import annotations

import functools
import json
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

from botwire.errors import InvalidRequest

_COMMON = """a about above after again all am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves
    s t d ll m re ve don doesn didn isn aren wasn weren hasn haven hadn shouldn wouldn couldn"""
COMMON_WORDS = frozenset(_COMMON.split())
"""English words too common to tell documents apart, and what is left of contractions once
the apostrophe splits them (``partner's``, ``I've``, ``don't``): in a ``match="any"`` query
they weigh little, and alone they do not make a document a match."""

_CJK = re.compile(
    "[\u2e80-\u2fdf\u3005\u3007\u3040-\u30ff\u3100-\u312f\u3131-\u318f\u31a0-\u31bf"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f]"
)


_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
"""Combining diacritical marks: the accents that folding removes (not the marks of Indic or
Hebrew script, nor the voicing marks of Japanese kana, which are part of their letters)."""
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """``text`` in lower case without accents, compatibility forms unified (``ﬁ`` → ``fi``)."""
    if text.isascii():
        return text.lower()
    bare = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", bare).casefold()


def _runs(text: str) -> list[list[str]]:
    """The words of ``text``, grouped by the run of letters, digits and marks they came from:
    a run with CJK characters gives several words (each CJK character one of them)."""
    folded = fold(text)
    if folded.isascii():
        return [[run] for run in _ASCII_WORD.findall(folded)]
    runs: list[list[str]] = []
    run: list[str] = []
    word: list[str] = []
    for char in folded + " ":
        kind = unicodedata.category(char)[0]
        if kind in "LNM" and char != "_":
            if _CJK.match(char):
                if word:
                    run.append("".join(word))
                    word = []
                run.append(char)
            else:
                word.append(char)
            continue
        if word:
            run.append("".join(word))
            word = []
        if run:
            runs.append(run)
            run = []
    return runs


def words(text: str) -> list[str]:
    """The words of ``text`` as the index keeps them (see the module's docstring)."""
    folded = fold(text)
    if folded.isascii():
        return _ASCII_WORD.findall(folded)
    return [word for run in _runs(folded) for word in run]


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value: dict values and list elements, nested."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


TOKEN_CHARS = 100
"""A string longer than this with no space in it is not text (an id, a token, base64 data):
it is not indexed."""
_SPACE = re.compile(r"\s")


def is_text(string: str) -> bool:
    """Whether a string of a value is indexed (see :data:`TOKEN_CHARS`)."""
    return len(string) <= TOKEN_CHARS or _SPACE.search(string) is not None


MAX_INDEXED_WORDS = 10_000
"""A document's first 10,000 words are indexed; the rest of a longer text is stored but not
found by search (the same on every store)."""
MAX_WORD_CHARS = 64
"""Words longer than this are not indexed (nor found): no one searches for them."""


def document_words(key: str, json_text: str | None) -> list[str]:
    """The words a store indexes for a key and a value (or list item) given as JSON text: the
    key's and the value's text (see the module's docstring), the first
    :data:`MAX_INDEXED_WORDS` words of :data:`MAX_WORD_CHARS` characters or fewer."""
    return _indexable(words(key) + value_words(json_text))


def value_words(json_text: str | None) -> list[str]:
    """The words of a value's text (or a list item's), given as JSON text."""
    if json_text is None:
        return []
    value = json.loads(json_text)
    found = [value] if isinstance(value, str) else strings(value)
    return _indexable(words(" ".join(string for string in found if is_text(string))))


def _indexable(found: list[str]) -> list[str]:
    return [word for word in found if len(word) <= MAX_WORD_CHARS][:MAX_INDEXED_WORDS]


def document(key: str, json_text: str | None) -> str:
    """:func:`document_words`, separated by spaces."""
    return " ".join(document_words(key, json_text))


# -- languages: what a word is indexed as --------------------------------------------------------

LANGUAGES = ("english", "simple")
"""``english``: each word is indexed as its stem (Snowball's English stemmer: ``hiking``,
``hiked`` and ``hikes`` are ``hike``), which a query's words are reduced to as well; words of
other languages mostly pass unchanged, and match as they are. ``simple``: each word as it is."""
DEFAULT_LANGUAGE = "english"
_stemmers = threading.local()


def check_language(language: object) -> str:
    """``language`` if a store can index in it."""
    if language not in LANGUAGES:
        raise InvalidRequest(
            f"a store's language is one of {', '.join(LANGUAGES)}, not {language!r}"
        )
    return str(language)


_IRREGULAR = """
arise arose arisen|awake awoke awoken|be was were been|bear bore born borne|beat beaten|
become became|begin began begun|bend bent|bet|bid|bind|bite bitten|bleed bled|
blow blew blown|break broke broken|breed bred|bring brought|build built|burn burnt|
burst|buy bought|catch caught|choose chose chosen|cling clung|come came|cost|creep crept|
cut|deal dealt|dig dug|do did done|draw drew drawn|dream dreamt|drink drank drunk|
drive drove driven|eat ate eaten|fall fallen|feed fed|feel felt|fight fought|
find found|flee fled|fly flew flown|forbid forbade forbidden|forget forgot forgotten|
forgive forgave forgiven|freeze froze frozen|get got gotten|give gave given|go went gone|
grind|grow grew grown|hang hung|have has had|hear heard|hide hid hidden|hit|
hold held|hurt|keep kept|kneel knelt|know knew known|lay laid|lead led|lean leant|
leap leapt|learn learnt|leave|lend lent|let|lie lain|light lit|lose lost|
make made|mean meant|meet met|pay paid|prove proven|put|quit|read|ride rode ridden|
ring rang rung|rise risen|run ran|say said|see seen|seek sought|sell sold|
send sent|set|sew sewn|shake shook shaken|shine shone|shoot shot|show shown|
shrink shrank shrunk|shut|sing sang sung|sink sank sunk|sit sat|sleep slept|slide slid|
speak spoke spoken|speed sped|spend spent|spin spun|spit spat|split|spread|
spring sprang sprung|stand stood|steal stole stolen|stick stuck|sting stung|stink stank|
stride strode|strike struck|swear swore sworn|sweep swept|swim swam swum|swing swung|
take took taken|teach taught|tear tore torn|tell told|think thought|throw threw thrown|
understand understood|wake woke woken|wear wore worn|weave wove woven|weep wept|win won|
wind|write wrote written|child children|man men|woman women|person people|
mouse mice|foot feet|tooth teeth|goose geese"""
IRREGULAR = {
    form: forms.split()[0]
    for forms in _IRREGULAR.replace("\n", "").split("|")
    for form in forms.split()[1:]
}
"""English words whose stem no suffix rule finds (``grew``, ``went``, ``children``), and the
word they are a form of: ``I grew up in Porto`` answers ``where did I grow up?``. Forms that are
words of their own as often (``left``, ``saw``, ``ground``, ``rose``) are not in it."""


@functools.lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """``word``'s English stem: Snowball's (its C build, PyStemmer, on CPython), after the base
    form of an irregular one (each thread has its own stemmer: they keep state)."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(IRREGULAR.get(word, word)))


def terms(found: Sequence[str], language: str) -> list[str]:
    """What ``found`` words are indexed (and looked up) as in ``language``."""
    return list(found) if language == "simple" else [stem(word) for word in found]
