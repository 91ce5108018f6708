"""What the makers read off a caption beyond its graph and share across families: lists and
compounds of the phrases, slots that hold one thing, number agreement after an edit and the
case of moved words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unimo_kit.rewrite.edits import (
    Edit,
    Phrase,
    fix_copula,
    fix_existential,
    valid_span,
)
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.words import is_body_part, is_locative
from unimo_kit.rewrite.vocab import morphy

if TYPE_CHECKING:
    pass


def same_roles(c: RewriteContext, i: int, j: int) -> bool:
    """Whether ``i`` and ``j`` are both subjects, or both objects, of some relation."""
    subjects = {r.subject for r in c.graph.relations}
    objects = {r.object for r in c.graph.relations}
    return (i in subjects and j in subjects) or (i in objects and j in objects)


def compound_tail(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s bare noun ends a noun compound that the parser split (``stop
    sign post``, ``table cloth``): the word right before it is another entity's noun, or a
    word WordNet knows only as a noun. An attribute put before the head would land inside
    the compound (``stop sign black post``)."""
    phrase = c.phrases[i]
    if phrase is None or phrase.determiner is not None or phrase.start < phrase.head[0]:
        return False
    before = c.caption[: phrase.start]
    words = before.split()
    if not words or not before[-1:].isspace():
        return False
    if any(
        valid_span(e.span, c.caption) and e.span[1] == len(before.rstrip())  # type: ignore[index]
        for j, e in enumerate(c.graph.entities)
        if j != i
    ):
        return True
    word = words[-1].lower()
    if len(word) < 3 or not word.isalpha() or morphy(word, "n") is None:
        return False
    return all(morphy(word, pos) is None for pos in ("a", "v", "r"))


def listed_together(c: RewriteContext, i: int, j: int) -> bool:
    """Whether the phrases of entities ``i`` and ``j`` stand side by side in a list (``four
    umbrellas and five chairs``, ``one pole , two lights``)."""
    pi, pj = c.phrases[i], c.phrases[j]
    if pi is None or pj is None:
        return False
    first, second = sorted((pi, pj), key=lambda p: p.start)
    return c.caption[first.end : second.start].strip().lower() in COORDINATORS


COORDINATORS = ("and", ",", "or", "&", ", and")


def agreement_edits(
    c: RewriteContext, phrase: Phrase, was_plural: bool, now_plural: bool
) -> list[Edit]:
    """Copula edits for a noun phrase whose number changed: ``is`` after it, ``there is``
    before it."""
    if was_plural == now_plural:
        return []
    out = []
    for fix in (
        fix_copula(c.caption, phrase.end, now_plural),
        fix_existential(c.caption, phrase.start, now_plural),
    ):
        if fix is not None:
            out.append(fix)
    return out


def bound_slot(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s phrase sits where another noun phrase cannot take its place
    in a swap: a possessor (``the train 's platform``), either side of ``of`` (``body of
    water``, ``bits of ice``), or a body part (``camera in hand``: a hand is not a woman)."""
    phrase = c.phrases[i]
    if phrase is None:
        return True
    after = c.caption[phrase.end :].lstrip().lower()
    before = c.caption[: phrase.start].lower().split()
    if after.startswith(("'s", "’s", "'", "’", "of ")):
        return True
    if before[-1:] == ["of"] and not is_locative(" ".join(before[-4:])):
        return True  # "body of water", not "to the left of a square"
    return is_body_part(c.graph.entities[i].name)


def singular_surface(noun: str) -> str:
    from unimo_kit.rewrite.grammar import singularize

    return singularize(noun, morphy)


def recase(moved: str, replaced: str, position: int) -> str:
    """``moved`` put where ``replaced`` stood: capitalised at sentence start, else lowered."""
    if position == 0 and replaced[:1].isupper():
        return moved[:1].upper() + moved[1:]
    if lowerable(moved):
        return moved[:1].lower() + moved[1:]
    return moved


def lowerable(text: str) -> bool:
    """Whether ``text`` starts with a capitalised word that is not an acronym (``A red``)."""
    first = text.split(" ", 1)[0]
    return first[:1].isupper() and not (len(first) > 1 and first.isupper())
