"""Full-text search: what is indexed, how text and queries are normalised, how filters read.

Every engine shares this; each only renders a parsed query and a filter in its own SQL
(FTS5 ``MATCH`` on SQLite, ``tsquery`` on PostgreSQL).

- A *document* is the key and every string of a value (dict values, list elements, nested;
  not numbers or booleans, nor strings of over 100 characters with no space, such as tokens
  and base64 data), or, for an append-list, the key and the strings of one item: a
  10,000-message chat is searchable message by message.
- Text is folded before the engine sees it: lower case, accents removed (``café`` → ``cafe``),
  compatibility forms unified, words of letters and digits only (emoji and punctuation fall
  away), and each CJK character a word of its own, so that both engines tokenise alike and a
  CJK phrase matches inside a sentence that has no spaces.
- A query is words that must all match; ``"quoted words"`` must match as a phrase; the last
  bare word also matches as a prefix (``pyth`` finds ``Python``). With ``match="any"`` a
  document matches when any of them does, and more matches rank higher: the way to find what
  is relevant to a question (``"what does the user like to eat?"``), whose common words
  (``what``, ``the``: :data:`COMMON_WORDS`) are left out unless nothing else is left.
  Anything else a user or a model may type (``*``, ``-``, ``:``, ``(``, ``AND``, ``NEAR``, a
  stray quote) is text, never engine syntax, so a query never fails to parse.
"""

from botwire.backends.search.filters import (
    MAX_CONDITIONS,
    MAX_FIELD_CHARS,
    MAX_IN,
    OPERATORS,
    Condition,
    JsonFields,
    Params,
    Scalar,
    check_where,
    conditions,
)
from botwire.backends.search.query import (
    COMMON_MIN_RARITY,
    COMMON_WEIGHT,
    MATCHES,
    MAX_COMMON_WORDS,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    ParsedQuery,
    Weighed,
    check_match,
    coverage,
    parse_query,
)
from botwire.backends.search.results import MAX_CONTEXT, Hit, Item, hits, search_op
from botwire.backends.search.sql import (
    SEARCH_OFF,
    SHORTEST_FIRST,
    TAG_CHARS,
    Counts,
    Dialect,
    Indexed,
    Rank,
    ShortestFirst,
    budget_terms,
    chunks,
    fts_document,
    idf,
    indexed,
    is_distinct,
    length_token,
    listing_sql,
    ns_tag,
    ranked_sql,
    ranking_plan,
    score_of,
    search_hits,
    search_scope,
    tsvector,
)
from botwire.backends.search.text import (
    COMMON_WORDS,
    DEFAULT_LANGUAGE,
    IRREGULAR,
    LANGUAGES,
    MAX_INDEXED_WORDS,
    MAX_WORD_CHARS,
    TOKEN_CHARS,
    check_language,
    document,
    document_words,
    fold,
    is_text,
    stem,
    strings,
    terms,
    value_words,
    words,
)

__all__ = [
    "COMMON_MIN_RARITY",
    "COMMON_WEIGHT",
    "COMMON_WORDS",
    "Condition",
    "Counts",
    "DEFAULT_LANGUAGE",
    "Dialect",
    "Hit",
    "IRREGULAR",
    "Item",
    "JsonFields",
    "LANGUAGES",
    "MATCHES",
    "MAX_COMMON_WORDS",
    "MAX_CONDITIONS",
    "MAX_CONTEXT",
    "MAX_FIELD_CHARS",
    "MAX_IN",
    "MAX_INDEXED_WORDS",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
    "MAX_WORD_CHARS",
    "OPERATORS",
    "Params",
    "ParsedQuery",
    "Weighed",
    "SEARCH_OFF",
    "SHORTEST_FIRST",
    "Scalar",
    "TAG_CHARS",
    "TOKEN_CHARS",
    "budget_terms",
    "check_language",
    "check_match",
    "check_where",
    "chunks",
    "conditions",
    "coverage",
    "document",
    "value_words",
    "document_words",
    "fold",
    "fts_document",
    "hits",
    "Indexed",
    "Rank",
    "ShortestFirst",
    "idf",
    "indexed",
    "is_distinct",
    "length_token",
    "is_text",
    "listing_sql",
    "ns_tag",
    "parse_query",
    "ranked_sql",
    "ranking_plan",
    "score_of",
    "search_hits",
    "search_op",
    "search_scope",
    "stem",
    "strings",
    "terms",
    "tsvector",
    "words",
]
