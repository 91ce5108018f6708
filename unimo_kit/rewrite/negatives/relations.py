"""Maker of the ``replace-rel`` type: a predicate becomes one of the same category that excludes
it (``sitting on`` -> ``standing on``), seen between the relation's two ends."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from unimo_kit.rewrite.edits import (
    Edit,
    fix_articles,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    copy_case,
    inflect_like,
)
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.registry import Made
from unimo_kit.rewrite.negatives.thresholds import MIN_RELATION_EVIDENCE
from unimo_kit.rewrite.negatives.words import (
    AGENT_VERBS,
    HELD_VERBS,
    LIGHT_VERBS,
    MASS_NOUNS,
    NOT_VERBS,
    PASSIVE_VERBS,
    first_class,
    is_active_verb_form,
    is_clothing,
    is_living,
    is_person,
)
from unimo_kit.rewrite.vocab import (
    BELOW,
    INVERSE,
    exclusive_predicates,
    lemma,
    part_related,
    relation_category,
)

if TYPE_CHECKING:
    from unimo_kit.rewrite.negatives.rewriter import Rewriter


SPATIAL_SURFACE = {"left of": "to the left of", "right of": "to the right of",
                   "in middle of": "in the middle of"}  # fmt: skip
"""How a normalised spatial predicate is written when it replaces another."""


def replace_rel(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = [
        k
        for k, r in enumerate(c.graph.relations)
        if valid_span(r.span, c.caption) and relation_category(r.predicate) != "other"
    ]
    if not choices:
        return False
    k = rng.choice(choices)
    relation = c.graph.relations[k]
    category = relation_category(relation.predicate)
    start, end = relation.span  # type: ignore[misc]
    old = c.caption[start:end]
    subject = c.graph.entities[relation.subject].name
    obj = c.graph.entities[relation.object].name
    norm = " ".join(relation.predicate.lower().split())
    if category == "action" and not is_active_verb_form(old, relation.predicate):
        return False  # "eye of a giraffe" (have), "kite attached to fence" (passive)
    if norm.split(" ", 1)[0] in LIGHT_VERBS:
        return False  # "the bus has wheels": nothing definite to contradict
    if category == "action" and norm.split(" ", 1)[0] in NOT_VERBS:
        return False  # "a woman close to the camera" is no verb: "a woman hold the camera"
    if (norm in ("in", "with") or norm.endswith(" in")) and is_clothing(obj):
        return False  # "a man (skiing) in a red shirt" says what he wears, not where he is
    if first_class(subject) == "noun.body" or part_related(subject, obj):
        return False  # "the mane on the giraffe", "door of a building": a part in its place
    target = c.phrases[relation.object]
    if target is None or target.start < end:
        return False  # "a truck with a plant on top": the object is not after the predicate

    thing = not is_living(subject)
    busy = any(  # the subject does something else too: its hands may be taken
        j != k and r.subject == relation.subject and relation_category(r.predicate) == "action"
        for j, r in enumerate(c.graph.relations)
    )

    def reject(p: str) -> bool:
        if p == norm or p.removeprefix("to ") == norm.removeprefix("to "):
            return True
        if p.split(" ", 1)[0] in LIGHT_VERBS | PASSIVE_VERBS:
            return True  # "hanging from" -> "mounting on": read as "mounted on"
        if (p == "in" or p.endswith(" in")) and is_clothing(obj):
            return True  # "surfing in a wetsuit" says what she wears again
        if thing and p.split(" ", 1)[0] in AGENT_VERBS:
            return True  # "a burger sitting on paper" → "a burger holding paper"
        if p.rsplit(" ", 1)[-1] in BELOW and lemma(obj) in MASS_NOUNS:
            return True  # "skiing down a mountain on the snow" → "under the snow"
        if not exclusive_predicates(norm, p, category):
            return True  # "at" → "inside", "playing with" → "throwing": may both hold
        # "batter wearing a jersey swinging a bat" → "holding a jersey": hands taken
        return busy and p.split(" ", 1)[0] in HELD_VERBS

    pool = rewriter.cached(
        ("rel", k), lambda: _relation_pool(rewriter, category, subject, obj), c
    )  # fmt: skip
    word = rewriter.pick(rng, pool, reject)
    if word is None:
        return None
    if category == "spatial":
        start, new = _spatial_surface(c.caption, start, end, old, word)
    else:
        new = inflect_like(word, old)
    if start != relation.span[0]:  # type: ignore[index]
        old = c.caption[start:end]
    graph = c.copy()
    graph.relations[k].predicate = word
    return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, new))]), graph


def _relation_pool(
    rewriter: Rewriter, category: str, subject: str, obj: str
) -> list[tuple[str, int]]:
    """Predicates of ``category`` seen at least :data:`MIN_RELATION_EVIDENCE` times
    between these two nouns (as the triple, or its inverse: ``B behind A`` attests ``A in
    front of B``), with that count as the weight of the draw: a relation that real
    captions give this pair of things, in proportion to how often they do."""
    out = []
    agent = is_person(subject)
    for p, _ in _ranked_all(rewriter.vocab.relations.get(category, Counter())):
        if category == "action" and p.split(" ", 1)[0] in NOT_VERBS:
            continue  # "close to": read as a verb by the category test
        evidence = rewriter.vocab.triple_count(subject, p, obj)
        if p in INVERSE:
            evidence += rewriter.vocab.triple_count(obj, INVERSE[p], subject)
        if evidence < MIN_RELATION_EVIDENCE and agent:  # what a man does, a woman does
            evidence = max(evidence, sum(
                rewriter.vocab.triple_count(x, p, obj)
                for x in rewriter.vocab.subjects_of(p, obj)
                if is_person(x)
            ))  # fmt: skip
        if evidence >= MIN_RELATION_EVIDENCE:
            out.append((p, evidence))
    return out


def _ranked_all(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda x: (-x[1], x[0]))


def _spatial_surface(caption: str, start: int, end: int, old: str, new: str) -> tuple[int, str]:
    """Where a spatial replacement starts and how it is written, keeping ``to the``/``on the``.

    ``to the left of`` → ``to the right of`` swaps only the direction word; any other change
    replaces the whole predicate (absorbing a ``to the``/``on the`` written before the span).
    """
    lower = old.lower()
    directions = ("left", "right")
    new_dir = new.split(" ", 1)[0]
    for d in directions:
        if d in lower.split() and new_dir in directions:
            if " ".join(lower.split()) == f"{d} of":  # bare "left of" reads better with "to the"
                return start, f"to the {new_dir} of"
            return start, old.replace(d, new_dir, 1) if d in old else old
    before = caption[:start].lower()
    if lower == "between" and before.endswith("in "):  # "in between" is one preposition
        return start - 3, SPATIAL_SURFACE.get(new, new)
    for lead in ("to the ", "on the ", "at the "):
        if before.endswith(lead) and lower.split(" ", 1)[0] in directions:
            start -= len(lead)
            break
    return start, SPATIAL_SURFACE.get(new, new)
