"""Sentence-level positives: rewrites of a caption that keep its meaning.

From the caption's scene graph (with spans):

- ``inverse-rel``: ``A left of B`` → ``B right of A`` (``above`` ↔ ``below``, ``in front of`` ↔
  ``behind``, ``over`` ↔ ``under``);
- ``symmetric-rel``: ``A next to B`` → ``B next to A`` (``beside``, ``near``, ...);
- ``passive``: ``a man rides a horse`` → ``a horse is ridden by a man`` (one-word action verbs
  in ``-s``/``-ing`` form);
- ``there-is``: ``a red circle above a star`` ↔ ``there is a red circle above a star``;
- ``determiner``: ``the circle`` ↔ ``a circle`` for the first singular noun phrase.

Every rewrite is applied only where it is safe: the relation's two noun phrases take part in no
other relation and nothing follows the second one (so no modifier changes owner), the copula
agrees with the new subject. Captions of the same image (``same-image``) and back-translations
(:mod:`unimo_kit.rewrite.backtranslate`) are added by the stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from unimo_kit.data.records import caption_key
from unimo_kit.data.scene_graph import Relation, SceneGraph
from unimo_kit.rewrite.edits import (
    Edit,
    Phrase,
    apply_edits,
    copy_graph,
    fix_articles,
    fix_copula,
    fix_existential,
    phrases,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    WORD_NUMBERS,
    article,
    copy_case,
    is_plural,
    past_participle,
)
from unimo_kit.rewrite.vocab import INVERSE, SYMMETRIC, morphy, relation_category

POSITIVE_TYPES: tuple[str, ...] = (
    "inverse-rel",
    "symmetric-rel",
    "passive",
    "there-is",
    "determiner",
    "same-image",
    "back-translation",
)
"""All positive types, in output order."""

GRAPH_POSITIVE_TYPES = POSITIVE_TYPES[:5]
"""The types made from the caption's scene graph by :func:`make_positives`."""

INVERSE_SURFACE = {
    "above": "below", "over": "under", "below": "above", "under": "over", "beneath": "above",
    "underneath": "above", "in front of": "behind", "behind": "in front of",
}  # fmt: skip
"""Surface form of a vertical/depth predicate → the surface form of its inverse."""

_GAP = re.compile(r"^\s+(?:(?:that|which)\s+)?(?:(is|are)\s+)?$", re.IGNORECASE)
_FINITE = re.compile(r"\b(is|are|was|were|has|have|does|do)\b", re.IGNORECASE)
_THERE = re.compile(r"^(there)\s+(is|are)\s+", re.IGNORECASE)


@dataclass
class Positive:
    """One positive: type, text, and the scene graph it expresses."""

    type: str  # one of POSITIVE_TYPES
    text: str  # the paraphrase
    graph: SceneGraph | None = None  # its graph (None for same-image / back-translation)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text}


def make_positives(
    caption: str, graph: SceneGraph, types: tuple[str, ...] = GRAPH_POSITIVE_TYPES
) -> list[Positive]:
    """Meaning-preserving rewrites of ``caption`` from its scene graph (see module doc).

    Args:
        caption: the original caption (the spans of ``graph`` point into it).
        graph: its scene graph with spans.
        types: which of :data:`GRAPH_POSITIVE_TYPES` to make.

    Returns:
        Distinct positives (none equal to the caption), in type order.
    """
    if not caption.strip() or not graph.entities:
        return []
    context = _Context(caption, graph, phrases(graph, caption))
    out: list[Positive] = []
    seen = {caption_key(caption)}
    for kind in types:
        make = _MAKERS.get(kind)
        if make is None:
            continue
        for edits, new_graph in make(context):
            try:
                text = apply_edits(caption, edits)
            except ValueError:
                continue
            key = caption_key(text)
            if key in seen:
                continue
            seen.add(key)
            new_graph.text = text
            out.append(Positive(kind, text, new_graph))
    return out


@dataclass
class _Context:
    caption: str
    graph: SceneGraph
    phrases: list[Phrase | None]

    def plural(self, i: int) -> bool:
        entity, phrase = self.graph.entities[i], self.phrases[i]
        head = self.caption[phrase.head[0] : phrase.head[1]] if phrase else entity.name
        return is_plural(head, morphy) or (entity.count or 1) > 1


def _degree(graph: SceneGraph) -> dict[int, int]:
    degree: dict[int, int] = {}
    for r in graph.relations:
        degree[r.subject] = degree.get(r.subject, 0) + 1
        degree[r.object] = degree.get(r.object, 0) + 1
    return degree


def _exchange(c: _Context, r: Relation, predicate_text: str) -> list[Edit] | None:
    """Edits writing ``<object phrase> <gap> <predicate_text> <subject phrase>`` over the span
    ``<subject phrase> <gap> <predicate> <object phrase>``, or ``None`` when unsafe."""
    ps, po = c.phrases[r.subject], c.phrases[r.object]
    if ps is None or po is None or not valid_span(r.span, c.caption):
        return None
    start, end = r.span  # type: ignore[misc]
    if not (ps.end <= start and end <= po.start):
        return None
    gap = c.caption[ps.end : start]
    if not _GAP.match(gap) or c.caption[end : po.start].strip():
        return None
    if c.caption[po.end :].strip(" .,;:!?\"')"):
        return None
    t_s, t_o = ps.text(c.caption), po.text(c.caption)
    new_subject = _recase(t_o, ps.start == 0 and t_s[:1].isupper())
    new_object = _recase(t_s, False)
    segment_gap = gap
    copula = fix_copula(c.caption, ps.end, c.plural(r.object))
    if copula is not None and copula.start < start:
        rel = copula.start - ps.end
        segment_gap = gap[:rel] + copula.new + gap[rel + len(copula.old) :]
    between = c.caption[end : po.start]
    new = new_subject + segment_gap + predicate_text + between + new_object
    edits = [Edit(ps.start, po.end, c.caption[ps.start : po.end], new)]
    existential = fix_existential(c.caption, ps.start, c.plural(r.object))  # "there is/are"
    return edits if existential is None else [existential, *edits]


def _recase(text: str, capital: bool) -> str:
    if capital:
        return text[:1].upper() + text[1:]
    if _lowerable(text):
        return text[:1].lower() + text[1:]
    return text


def _relation_swaps(c: _Context, symmetric: bool) -> list[tuple[list[Edit], SceneGraph]]:
    out = []
    degree = _degree(c.graph)
    for k, r in enumerate(c.graph.relations):
        if degree[r.subject] > 1 or degree[r.object] > 1 or r.subject == r.object:
            continue
        predicate = r.predicate.lower()
        if not valid_span(r.span, c.caption):
            continue
        surface = c.caption[r.span[0] : r.span[1]]  # type: ignore[index]
        if symmetric:
            if predicate not in SYMMETRIC:
                continue
            new_surface, new_predicate = surface, r.predicate
        else:
            if predicate not in INVERSE:
                continue
            new_predicate = INVERSE[predicate]
            new_surface = _inverse_surface(surface)
            if new_surface is None:
                continue
        edits = _exchange(c, r, new_surface)
        if edits is None:
            continue
        graph = copy_graph(c.graph)
        graph.relations[k] = Relation(r.object, new_predicate, r.subject, None)
        out.append((edits, graph))
    return out


def _inverse_surface(surface: str) -> str | None:
    lower = surface.lower()
    for a, b in (("left", "right"), ("right", "left")):
        if " ".join(lower.split()) == f"{a} of":  # bare "left of" reads better with "to the"
            return copy_case(surface, f"to the {b} of")
        if re.search(rf"\b{a}\b", lower):
            return re.sub(rf"\b{a}\b", b, surface, count=1, flags=re.IGNORECASE)
    key = " ".join(lower.split())
    if key in INVERSE_SURFACE:
        return copy_case(surface, INVERSE_SURFACE[key])
    return None


def _inverse_rel(c: _Context) -> list[tuple[list[Edit], SceneGraph]]:
    return _relation_swaps(c, symmetric=False)


def _symmetric_rel(c: _Context) -> list[tuple[list[Edit], SceneGraph]]:
    return _relation_swaps(c, symmetric=True)


def _passive(c: _Context) -> list[tuple[list[Edit], SceneGraph]]:
    out = []
    degree = _degree(c.graph)
    for r in c.graph.relations:
        if degree[r.subject] > 1 or degree[r.object] > 1 or not valid_span(r.span, c.caption):
            continue
        predicate = r.predicate.lower()
        if (
            " " in predicate
            or predicate in ("have", "be", "wear")
            or (relation_category(predicate) != "action")
        ):
            continue
        surface = c.caption[r.span[0] : r.span[1]]  # type: ignore[index]
        word = surface.lower()
        if " " in word or (word == predicate and not word.endswith("s")):
            continue
        plural_object = c.plural(r.object)
        gap = c.caption[c.phrases[r.subject].end : r.span[0]] if c.phrases[r.subject] else ""  # type: ignore[union-attr]
        participle = past_participle(predicate)
        if word.endswith("ing"):
            if gap.strip():  # "a man is riding a horse": keep it simple, skip
                continue
            new = f"being {participle} by"
        elif word.endswith("s") and not gap.strip():
            new = f"{'are' if plural_object else 'is'} {participle} by"
        else:
            continue
        edits = _exchange(c, r, new)
        if edits is None:
            continue
        out.append((edits, copy_graph(c.graph)))
    return out


def _there_is(c: _Context) -> list[tuple[list[Edit], SceneGraph]]:
    caption = c.caption
    match = _THERE.match(caption)
    if match:
        rest = caption[match.end() :]
        if not rest or _FINITE.search(rest):
            return []
        first = rest[:1].upper() if caption[:1].isupper() else rest[:1]
        return [([Edit(0, match.end() + 1, caption[: match.end() + 1], first)], _copy(c))]
    firsts = [(p.start, i) for i, p in enumerate(c.phrases) if p is not None]
    if not firsts:
        return []
    start, i = min(firsts)
    phrase = c.phrases[i]
    if start != 0 or phrase is None or phrase.determiner is None or _FINITE.search(caption):
        return []
    determiner = caption[phrase.determiner[0] : phrase.determiner[1]].lower()
    if determiner not in {"a", "an", "some"} | set(WORD_NUMBERS):
        return []
    for r in c.graph.relations:
        if relation_category(r.predicate) != "action" or not valid_span(r.span, caption):
            continue
        if not caption[r.span[0] : r.span[1]].split(" ", 1)[0].lower().endswith("ing"):  # type: ignore[index]
            return []  # "a man rides a horse" has a finite verb: no "there is"
    verb = "are" if c.plural(i) else "is"
    lead = copy_case(caption, f"there {verb} ")
    first = caption[:1].lower() if caption[1:2].islower() or caption[1:2] == " " else caption[:1]
    return [([Edit(0, 1, caption[:1], lead + first)], _copy(c))]


def _determiner(c: _Context) -> list[tuple[list[Edit], SceneGraph]]:
    ordered = sorted((p.start, i) for i, p in enumerate(c.phrases) if p is not None)
    for _, i in ordered:
        phrase = c.phrases[i]
        if phrase is None or phrase.determiner is None or c.plural(i):
            continue
        d0, d1 = phrase.determiner
        old = c.caption[d0:d1]
        lower = old.lower()
        following = c.caption[d1:].lstrip().split(" ", 1)[0]
        if lower == "the":
            new = article(following)
        elif lower in ("a", "an"):
            new = "the"
        else:
            continue
        edits = fix_articles(c.caption, [Edit(d0, d1, old, copy_case(old, new))])
        return [(edits, _copy(c))]
    return []


def _copy(c: _Context) -> SceneGraph:
    return copy_graph(c.graph)


_MAKERS = {
    "inverse-rel": _inverse_rel,
    "symmetric-rel": _symmetric_rel,
    "passive": _passive,
    "there-is": _there_is,
    "determiner": _determiner,
}


def _lowerable(text: str) -> bool:
    """Whether ``text`` starts with a capitalised word that is not an acronym (``A red``)."""
    first = text.split(" ", 1)[0]
    return first[:1].isupper() and not (len(first) > 1 and first.isupper())
