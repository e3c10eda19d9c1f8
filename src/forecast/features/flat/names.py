"""What a column's name says: word tokens, outcome words (a leakage hint) and id-like names."""

from __future__ import annotations

import re

OUTCOME_TOKENS: frozenset[str] = frozenset(
    {
        "won", "lost", "loss", "closed", "close", "closing", "converted", "conversion", "status",
        "result", "results", "outcome", "stage", "disposition", "probability",
    }
)  # fmt: skip
"""Name tokens that speak of the outcome (matched on word tokens, case-insensitive)."""
OUTCOME_PHRASES: dict[str, str] = {
    "lastactivity": "last activity",
    "lastcontacted": "last contacted",
    "lastcontact": "last contact",
    "lastengagement": "last engagement",
    "closedate": "close date",
    "closedwon": "closed won",
    "closedlost": "closed lost",
    "dealstage": "deal stage",
    "lifecyclestage": "lifecycle stage",
    "leadstatus": "lead status",
    "lostreason": "lost reason",
    "isclosed": "is closed",
    "iswon": "is won",
    "forecastcategory": "forecast category",
    "stagename": "stage name",
}
"""Run-together names (HubSpot's ``hs_lastactivitydate``) matched inside the name without separators."""
_ID_TOKENS = frozenset({"id", "uuid", "guid"})
NUMBER_ID_TOKENS: frozenset[str] = frozenset(
    {"id", "uuid", "guid", "number", "no", "nr", "num", "code", "key", "ref", "reference", "record"}
)
"""Name tokens of a number that identifies a row ("Lead Number", "Account No", "Customer Code")."""


def name_tokens(name: str) -> list[str]:
    """Split a column name into lower-case word tokens (on ``_``, spaces, ``-``, ``.`` and camelCase)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def outcome_words(name: str) -> list[str]:
    """The outcome words found in a column name (empty when the name is innocent)."""
    tokens = name_tokens(name)
    hits = [t for t in tokens if t in OUTCOME_TOKENS]
    joined = "".join(tokens)
    hits += [words for p, words in OUTCOME_PHRASES.items() if p in joined and not any(h in p for h in hits)]
    return list(dict.fromkeys(hits))


def looks_like_id_name(name: str) -> bool:
    """Whether a column name reads as an id (``Lead ID``, ``uuid``, ``key``)."""
    tokens = name_tokens(name)
    return bool(tokens) and (tokens[-1] in _ID_TOKENS or name.strip().lower() in {"key", "record"})
