"""Character-span edits of a caption, and the noun phrases they work on.

Every rewrite is a list of :class:`Edit` (``[start, end)`` spans into the ORIGINAL caption, the
old text and the new text); :func:`apply_edits` turns them into the rewritten caption, and the
record written to ``rewrites.jsonl`` carries them, so a consumer can see exactly what changed.

:func:`phrase_of` finds, for an entity with a head span, its whole noun phrase (determiner or
numeral, attributes, head) so phrases can be swapped, counted and given agreeing articles.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph
from unimo_kit.rewrite.grammar import WORD_NUMBERS, article, copy_case


@dataclass(frozen=True, order=True)
class Edit:
    """Replace ``text[start:end]`` (which is ``old``) with ``new``."""

    start: int  # first character of the span in the original caption
    end: int  # one past the last character (== start for an insertion)
    old: str  # the original text of the span
    new: str  # what replaces it

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "old": self.old, "new": self.new}


def apply_edits(text: str, edits: list[Edit] | list[dict]) -> str:
    """Apply non-overlapping edits (in any order) to ``text``.

    Raises:
        ValueError: when edits overlap or an edit's ``old`` does not match the text.
    """
    items = sorted(
        (e if isinstance(e, Edit) else Edit(e["start"], e["end"], e["old"], e["new"]))
        for e in edits
    )
    out, cursor = [], 0
    for e in items:
        if e.start < cursor or text[e.start : e.end] != e.old:
            raise ValueError(f"bad edit {e} for {text!r}")
        out.append(text[cursor : e.start])
        out.append(e.new)
        cursor = e.end
    out.append(text[cursor:])
    return "".join(out)


def overlaps(edits: list[Edit]) -> bool:
    """Whether any two edits overlap (an insertion touching a replacement counts)."""
    items = sorted(edits)
    return any(b.start < a.end or (b.start == a.start) for a, b in itertools.pairwise(items))


DETERMINERS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "some",
        "several",
        "many",
        "few",
        "his",
        "her",
        "its",
        "their",
        "my",
        "our",
        "your",
        "each",
        "every",
        "another",
    ]
) | frozenset(WORD_NUMBERS)
_DET_BEFORE = re.compile(r"(?:^|(?<=[\s(\"']))([A-Za-z0-9]+)(\s+)$")
_COPULA_AFTER = re.compile(r"^(\s+)(is|are|was|were|has|have)\b", re.IGNORECASE)
_ARTICLE_BEFORE = re.compile(r"(?:^|(?<=[\s(\"']))(an?|An?|AN?)(\s+)$")
_EXISTENTIAL_BEFORE = re.compile(r"(?:^|(?<=[\s(\"']))there\s+(is|are|was|were)\s+$", re.IGNORECASE)


@dataclass(frozen=True)
class Phrase:
    """The noun phrase of an entity in the caption."""

    start: int  # first character (determiner or numeral when present)
    end: int  # end of the head noun
    head: tuple[int, int]  # span of the head noun
    determiner: tuple[int, int] | None  # span of the determiner or numeral, if any

    def text(self, caption: str) -> str:
        return caption[self.start : self.end]


def phrase_of(caption: str, entity: Entity) -> Phrase | None:
    """The noun phrase of ``entity`` in ``caption`` (``None`` without a usable head span).

    The phrase runs from the determiner (or numeral) before the leftmost pre-head attribute
    to the end of the head noun.
    """
    if not _valid(entity.span, caption):
        return None
    head = (int(entity.span[0]), int(entity.span[1]))  # type: ignore[index]
    start = head[0]
    for attribute in entity.attributes:
        span = attribute.span
        if _valid(span, caption) and span[1] <= head[0] and head[0] - span[0] <= 60:  # type: ignore[index]
            start = min(start, span[0])  # type: ignore[index]
    determiner = None
    match = _DET_BEFORE.search(caption[:start])
    if match and match.group(1).lower() in DETERMINERS:
        determiner = (match.start(1), match.end(1))
        start = match.start(1)
    else:  # a numeral read as a count attribute stands where the determiner would
        first = re.match(r"[A-Za-z0-9]+", caption[start:])
        if first and start < head[0] and first.group().lower() in WORD_NUMBERS:
            determiner = (start, start + first.end())
    return Phrase(start, head[1], head, determiner)


def phrases(graph: SceneGraph, caption: str) -> list[Phrase | None]:
    """:func:`phrase_of` for each entity; entities sharing a head span (``it``) give ``None``."""
    out: list[Phrase | None] = []
    seen: set[tuple[int, int]] = set()
    for entity in graph.entities:
        phrase = phrase_of(caption, entity)
        if phrase is not None and phrase.head in seen:
            phrase = None
        if phrase is not None:
            seen.add(phrase.head)
        out.append(phrase)
    return out


def _valid(span: object, caption: str) -> bool:
    return (
        isinstance(span, (tuple, list))
        and len(span) == 2
        and isinstance(span[0], int)
        and isinstance(span[1], int)
        and 0 <= span[0] < span[1] <= len(caption)
    )


def valid_span(span: object, caption: str) -> bool:
    """Whether ``span`` is a non-empty ``(start, end)`` inside ``caption``."""
    return _valid(span, caption)


def fix_articles(caption: str, edits: list[Edit]) -> list[Edit]:
    """Add edits turning ``a``/``an`` before an edited word into the agreeing article."""
    out = list(edits)
    covered = [(e.start, e.end) for e in edits]
    for e in edits:
        match = _ARTICLE_BEFORE.search(caption[: e.start])
        if not match:
            continue
        a0, a1 = match.start(1), match.end(1)
        if any(s < a1 and a0 < t for s, t in covered):
            continue
        following = e.new.lstrip() or caption[e.end :].lstrip()
        wanted = article(following.split(" ", 1)[0] if following else "")
        old = match.group(1)
        if old.lower() != wanted:
            new = copy_case(old, wanted) if not old.isupper() or len(old) == 1 else wanted.upper()
            out.append(Edit(a0, a1, old, new))
            covered.append((a0, a1))
    return out


def fix_copula(caption: str, position: int, plural: bool) -> Edit | None:
    """An edit making the copula right after ``position`` agree (``is`` ↔ ``are``)."""
    match = _COPULA_AFTER.match(caption[position:])
    if not match:
        return None
    word = match.group(2)
    start = position + match.start(2)
    return _agree(word, start, plural)


def fix_existential(caption: str, position: int, plural: bool) -> Edit | None:
    """An edit making the copula of ``there is``/``there are`` right before ``position`` (the
    start of the noun phrase it introduces) agree: the mirror of :func:`fix_copula` for
    existential captions, where the copula comes before its phrase."""
    match = _EXISTENTIAL_BEFORE.search(caption[:position])
    if not match:
        return None
    return _agree(match.group(1), match.start(1), plural)


def _agree(word: str, start: int, plural: bool) -> Edit | None:
    """An edit turning the copula ``word`` at ``start`` into its singular or plural form, or
    ``None`` when it already agrees."""
    pairs = {"is": "are", "was": "were", "has": "have"}
    singular = {v: k for k, v in pairs.items()}
    lower = word.lower()
    wanted = (pairs.get(lower, lower)) if plural else singular.get(lower, lower)
    if wanted == lower:
        return None
    return Edit(start, start + len(word), word, copy_case(word, wanted))


def copy_graph(graph: SceneGraph) -> SceneGraph:
    """A deep copy of ``graph`` (much faster than ``copy.deepcopy`` for these dataclasses)."""
    return SceneGraph(
        [
            Entity(
                e.name, [Attribute(a.text, a.span, a.kind) for a in e.attributes], e.span, e.count
            )
            for e in graph.entities
        ],
        [Relation(r.subject, r.predicate, r.object, r.span) for r in graph.relations],
        graph.text,
    )
