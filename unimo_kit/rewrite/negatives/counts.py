"""Maker of the ``count`` type: a numeral changes, and the noun's number, its article and the
copula agree."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from unimo_kit.data.scene_graph import Attribute
from unimo_kit.rewrite.edits import (
    Edit,
    fix_copula,
    fix_existential,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    WORD_NUMBERS,
    number_word,
    pluralize,
)
from unimo_kit.rewrite.negatives.caption import singular_surface
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.registry import Made
from unimo_kit.rewrite.vocab import (
    attribute_category,
    lemma,
)

if TYPE_CHECKING:
    from unimo_kit.rewrite.negatives.rewriter import Rewriter


def change_count(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = []
    for i, entity in enumerate(c.graph.entities):
        phrase = c.phrases[i]
        if phrase is None:
            continue
        span = None
        for a in entity.attributes:
            if attribute_category(a.text) == "count" and valid_span(a.span, c.caption):
                span = tuple(a.span)  # type: ignore[arg-type]
        if span is None and phrase.determiner is not None:
            word = c.caption[phrase.determiner[0] : phrase.determiner[1]].lower()
            if word in WORD_NUMBERS:
                span = phrase.determiner
        if span is not None and c.caption[span[0] : span[1]].lower() in WORD_NUMBERS:
            choices.append((i, span))
    if not choices:
        return False
    i, (start, end) = rng.choice(choices)
    old = c.caption[start:end]
    n = WORD_NUMBERS[old.lower()]
    values = sorted(
        {WORD_NUMBERS[w] for w in rewriter.vocab.attributes.get("count", {})} | {1, 2, 3, 4, 5}
    )
    values = [v for v in values if v != n and 1 <= v <= 10]
    m = rng.choice(values)
    edits = [Edit(start, end, old, number_word(m, old))]
    entity = c.graph.entities[i]
    phrase = c.phrases[i]
    assert phrase is not None
    head_old = c.caption[phrase.head[0] : phrase.head[1]]
    if (n == 1) != (m == 1):
        head_new = singular_surface(head_old) if m == 1 else pluralize(head_old)
        edits.append(Edit(phrase.head[0], phrase.head[1], head_old, head_new))
        if any(r.subject == i for r in c.graph.relations) or phrase.start == 0:
            fix = fix_copula(c.caption, phrase.end, m > 1)
            if fix is not None:
                edits.append(fix)
        fix = fix_existential(c.caption, phrase.start, m > 1)  # "there is/are" + phrase
        if fix is not None:
            edits.append(fix)
    graph = c.copy()
    g_entity = graph.entities[i]
    g_entity.count = m
    for a in g_entity.attributes:
        if attribute_category(a.text) == "count":
            a.text = str(m)
    if not any(attribute_category(a.text) == "count" for a in g_entity.attributes):
        g_entity.attributes.append(Attribute(str(m), kind="count"))
    g_entity.name = pluralize(lemma(entity.name)) if m > 1 else lemma(entity.name)
    return edits, graph
