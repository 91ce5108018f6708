"""Makers of the attribute types: ``replace-att`` (a contrasting attribute attested with the
noun), ``swap-att`` (two objects exchange attributes or counts) and ``add-att`` (an attribute of
a category the object lacks), with the pools they draw from and the reasons a swap is refused
(:func:`swap_att_review`)."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

from unimo_kit.data.scene_graph import (
    Attribute,
    Relation,
)
from unimo_kit.rewrite.edits import (
    Edit,
    fix_articles,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    WORD_NUMBERS,
    article,
    copy_case,
    number_word,
    pluralize,
)
from unimo_kit.rewrite.negatives.caption import (
    agreement_edits,
    bound_slot,
    compound_tail,
    listed_together,
    recase,
    same_roles,
    singular_surface,
)
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.registry import Made
from unimo_kit.rewrite.negatives.thresholds import (
    ADDED_CATEGORIES,
    COMMON_SHARE,
    FALLBACK_CATEGORIES,
    MIN_ATTRIBUTE_SHARE,
    MIN_CANDIDATE_COUNT,
    STATED_SHARE,
    USUAL_EVIDENCE,
    USUAL_SHARE,
)
from unimo_kit.rewrite.negatives.words import (
    CARRIED_ON,
    colour_word,
    is_living,
    is_locative,
    is_symmetric,
    made_thing,
    plain_colour,
    swap_category,
)
from unimo_kit.rewrite.vocab import (
    attribute_category,
    contrasts,
    lemma,
    noun_classes,
    related,
)

if TYPE_CHECKING:
    from unimo_kit.rewrite.negatives.rewriter import Rewriter


ADJECTIVE_ORDER = {"count": 0, "other": 1, "size": 2, "age": 3, "shape": 4, "color": 5,
                   "material": 6}  # fmt: skip
"""English adjective order: a smaller rank stands further from the noun."""


def _attribute_pool(
    rewriter: Rewriter, category: str, noun: str, old: str
) -> list[tuple[str, int]]:
    """Attributes that contrast with ``old`` on ``noun``: another colour, material or shape
    seen on the noun; the opposite size or age; an antonym for any other attribute."""
    seen = rewriter.vocab.noun_attributes.get(lemma(noun), Counter())
    if category in ("size", "age", "other"):
        opposites = contrasts(old, category)
        pool = [(w, seen.get(w, 0) + 1) for w in sorted(opposites)]
        if category == "other":  # an antonym nothing attests on this noun reads oddly
            pool = [(w, n) for w, n in pool if seen.get(w)]
        return pool
    return [(w, n) for w, n in seen.items() if attribute_category(w) == category]


def replace_att(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = [
        (i, j)
        for i, e in enumerate(c.graph.entities)
        for j, a in enumerate(e.attributes)
        if valid_span(a.span, c.caption) and attribute_category(a.text) != "count"
    ]
    if not choices:
        return False
    i, j = rng.choice(choices)
    entity = c.graph.entities[i]
    attribute = entity.attributes[j]
    category = attribute_category(attribute.text)
    start, end = attribute.span  # type: ignore[misc]
    old = c.caption[start:end]
    own = {a.text.lower() for a in entity.attributes}
    pool = rewriter.cached(
        ("att", i, j), lambda: _attribute_pool(rewriter, category, entity.name, attribute.text), c
    )
    word = rewriter.pick(
        rng,
        sorted(pool, key=lambda x: (-x[1], x[0])),
        lambda w: w in own or related(w, attribute.text, "a") or related(w, old, "a"),
    )
    if word is None:
        return None
    graph = c.copy()
    graph.entities[i].attributes[j].text = word
    return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, word))]), graph


def swap_att(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = rewriter.cached(("swap-att",), lambda: _swap_att_choices(rewriter, c), c)
    if not choices:
        return False
    choice = rng.choice(choices)
    if choice[0] == "count":
        return _swap_counts(rewriter, c, choice[1], choice[2])
    _, i, x, j, y = choice
    entities = c.graph.entities
    ax, by = entities[i].attributes[x], entities[j].attributes[y]
    s1, s2 = ax.span, by.span
    o1, o2 = c.caption[s1[0] : s1[1]], c.caption[s2[0] : s2[1]]  # type: ignore[index]
    edits = [
        Edit(s1[0], s1[1], o1, recase(o2, o1, s1[0])),  # type: ignore[index]
        Edit(s2[0], s2[1], o2, recase(o1, o2, s2[0])),  # type: ignore[index]
    ]
    graph = c.copy()
    graph.entities[i].attributes[x].text = by.text
    graph.entities[j].attributes[y].text = ax.text
    return fix_articles(c.caption, edits), graph


def _swap_att_choices(rewriter: Rewriter, c: RewriteContext) -> list[tuple[Any, ...]]:
    """Attribute pairs of two objects that can change places (same category, or across
    categories where each object has no other attribute before its noun and each is
    attested with the other's attribute), and pairs of objects with different counts."""
    return [choice for choice, why in swap_att_review(rewriter, c) if why is None]


def swap_att_review(
    rewriter: Rewriter, c: RewriteContext
) -> list[tuple[tuple[Any, ...], str | None]]:
    """Every swap-att candidate of the caption with why it is refused (``None``: made):
    ``("att", i, x, j, y)`` (attribute ``x`` of ``i`` for ``y`` of ``j``) and
    ``("count", i, j)``."""
    out: list[tuple[tuple[Any, ...], str | None]] = []
    entities = c.graph.entities
    for i, a in enumerate(entities):
        for j in range(i + 1, len(entities)):
            b = entities[j]
            same = lemma(a.name) == lemma(b.name)
            for x in range(len(a.attributes)):
                for y in range(len(b.attributes)):
                    why = "same noun" if same else _attribute_refusal(rewriter, c, i, x, j, y)
                    out.append((("att", i, x, j, y), why))
            if _count_of(c, i) is not None and _count_of(c, j) is not None:
                why = "same noun" if same else _count_refusal(rewriter, c, i, j)
                out.append((("count", i, j), why))
    return out


def _attribute_refusal(
    rewriter: Rewriter, c: RewriteContext, i: int, x: int, j: int, y: int
) -> str | None:
    """Why attribute ``x`` of entity ``i`` and ``y`` of ``j`` may not change places."""
    a, b = c.graph.entities[i], c.graph.entities[j]
    ax, by = a.attributes[x], b.attributes[y]
    if not (valid_span(ax.span, c.caption) and valid_span(by.span, c.caption)):
        return "attribute without a span"
    if _colour_compound(c, i, x) or _colour_compound(c, j, y):
        return "one word of a multi-word colour"  # "olive green" → "olive white"
    cx, cy = swap_category(ax.text), swap_category(by.text)
    if "count" in (cx, cy):
        return "a count (see the count swap)"
    if ax.text.lower() == by.text.lower() or related(ax.text, by.text, "a"):
        return "same or related attribute"
    # after the swap each object must not already have the other value or its category
    if by.text.lower() in {t.text.lower() for t in a.attributes}:
        return "the value is there already"
    if ax.text.lower() in {t.text.lower() for t in b.attributes}:
        return "the value is there already"
    na, nb = _described(c, i, ax), _described(c, j, by)
    if not (_swap_attested(rewriter, na, by.text) and _swap_attested(rewriter, nb, ax.text)):
        return "not seen on the new noun"  # "a green horse on white grass"
    if cx == cy:
        return None
    if "other" in (cx, cy):
        return "across categories with no category"  # "a starbucks apron with a green logo"
    others_a = {swap_category(t.text) for k, t in enumerate(a.attributes) if k != x}
    others_b = {swap_category(t.text) for k, t in enumerate(b.attributes) if k != y}
    if cy in others_a or cx in others_b:
        return "two of a category after the swap"  # "a black white dog"
    if len(_pre_head(c, i)) > 1 or len(_pre_head(c, j)) > 1:
        return "across categories beside another adjective"  # adjective order
    return None


def _swap_attested(rewriter: Rewriter, noun: str, attribute: str) -> bool:
    """Whether ``attribute`` may move onto ``noun`` in a swap: :meth:`_seen_on` it, or —
    for a made thing (a jersey, a box, a sign) — a
    plain colour on a noun captions often colour (:meth:`_colourable`; ``red jersey and
    white pants`` → ``white jersey and red pants``), or a material, shape or size seen on
    it at least once. Living things, plants, food, body parts and the sky keep the strict
    rule (``green leaves and white flowers`` is not swapped); see :func:`made_thing`."""
    if _seen_on(rewriter, noun, attribute):
        return True
    if not made_thing(noun):
        return False
    category = swap_category(attribute)
    if category == "color":
        return plain_colour(attribute) and _colourable(rewriter, noun)
    if category in ("material", "shape", "size"):
        return rewriter.vocab.attribute_count(noun, attribute) >= 1
    return False


def _colourable(rewriter: Rewriter, noun: str) -> bool:
    """Whether captions give ``noun`` a colour often (:data:`USUAL_EVIDENCE` times or
    more, over at least :data:`MIN_CANDIDATE_COUNT` different colours): a thing that
    comes in many colours, so a plain colour on it is a sensible scene."""
    seen = rewriter.vocab.noun_attributes.get(lemma(noun), {})
    colours = {w: k for w, k in seen.items() if attribute_category(w) == "color"}
    return sum(colours.values()) >= USUAL_EVIDENCE and len(colours) >= MIN_CANDIDATE_COUNT


def _seen_on(rewriter: Rewriter, noun: str, attribute: str) -> bool:
    """Whether ``attribute`` is seen on ``noun`` in at least :data:`MIN_ATTRIBUTE_SHARE`
    of the noun's attributes of its category, and at least :data:`MIN_CANDIDATE_COUNT`
    times where the noun is seen with :data:`USUAL_EVIDENCE` or more of them (a parser
    slip or an odd photo does not make ``a green horse`` sensible)."""
    seen = rewriter.vocab.noun_attributes.get(lemma(noun), {})
    n = rewriter.vocab.attribute_count(noun, attribute)
    category = attribute_category(attribute)
    total = sum(k for w, k in seen.items() if attribute_category(w) == category)
    least = MIN_CANDIDATE_COUNT if total >= USUAL_EVIDENCE else 1
    return n >= least and n >= MIN_ATTRIBUTE_SHARE * total


def _count_refusal(rewriter: Rewriter, c: RewriteContext, i: int, j: int) -> str | None:
    """Counts swap between parallel objects (``two giraffes and a zebra``), not the two
    ends of one relation: ``two people on a mountain`` → ``a person on two mountains``
    and ``a lamp with two lights`` → ``two lamps with a light`` are odd scenes."""
    ci, cj = _count_of(c, i), _count_of(c, j)
    if ci is None or cj is None or ci[0] == cj[0]:
        return "same count"
    if bound_slot(c, i) or bound_slot(c, j):
        return "possessor, of-phrase or body part"  # "a bike with tires of two sizes"
    between = [r for r in c.graph.relations if {r.subject, r.object} == {i, j}]
    if between:
        ok = all(_counts_cross(c, r) for r in between)
        return None if ok else "counts across one relation"
    if not (listed_together(c, i, j) or same_roles(c, i, j)):
        return "not parallel"  # "three men riding horseback on the side of a road"
    return None


def _swap_counts(rewriter: Rewriter, c: RewriteContext, i: int, j: int) -> Made:
    """``Two giraffes and a zebra`` → ``A giraffe and two zebras``: each object takes the
    other's number, nouns, articles and copulas agree."""
    (ni, si), (nj, sj) = _count_of(c, i), _count_of(c, j)  # type: ignore[misc]
    edits: list[Edit] = []
    graph = c.copy()
    for e, (start, end), old_n, new_n in ((i, si, ni, nj), (j, sj, nj, ni)):
        phrase = c.phrases[e]
        assert phrase is not None
        old_word = c.caption[start:end]
        head_old = c.caption[phrase.head[0] : phrase.head[1]]
        head_new = head_old
        if (old_n == 1) != (new_n == 1):
            head_new = singular_surface(head_old) if new_n == 1 else pluralize(head_old)
            edits.append(Edit(phrase.head[0], phrase.head[1], head_old, head_new))
        if new_n == 1:
            following = c.caption[end : phrase.head[0]] + head_new
            word = article(following.split()[0] if following.split() else head_new)
        else:
            word = number_word(new_n, "two" if old_word.lower() in ("a", "an") else old_word)
        edits.append(Edit(start, end, old_word, copy_case(old_word, word)))
        if (old_n == 1) != (new_n == 1):
            edits += agreement_edits(c, phrase, old_n > 1, new_n > 1)
        entity = graph.entities[e]
        entity.count = new_n if new_n > 1 else None
        entity.attributes = [a for a in entity.attributes if attribute_category(a.text) != "count"]
        if new_n > 1:
            entity.attributes.append(Attribute(str(new_n), kind="count"))
        base = lemma(entity.name)
        entity.name = pluralize(base) if new_n > 1 else base
    return edits, graph


def add_att(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = rewriter.cached(("add-att",), lambda: _add_att_choices(rewriter, c), c)
    if not choices:
        return False
    i, category, pool = rng.choice(choices)
    entity = c.graph.entities[i]
    phrase = c.phrases[i]
    assert phrase is not None
    near = set(c.caption.lower().split())  # "black laptops have black keyboards"
    word = rewriter.pick(
        rng,
        pool,
        lambda w: w in near or any(related(w, a.text, "a") for a in entity.attributes),
    )
    if word is None:
        return None
    rank = ADJECTIVE_ORDER[category]
    position = phrase.head[0]
    for a in sorted(entity.attributes, key=lambda a: a.span or (0, 0)):
        span = a.span
        if not valid_span(span, c.caption) or span[1] > phrase.head[0]:  # type: ignore[index]
            continue
        if ADJECTIVE_ORDER.get(attribute_category(a.text), 1) > rank:
            position = min(position, span[0])  # type: ignore[index]
    first = c.caption[position]
    if position == 0 and first.isupper():  # "Circles ..." -> "Red circles ..."
        edits = [Edit(0, 1, first, copy_case(first, word) + " " + first.lower())]
    else:
        edits = [Edit(position, position, "", word + " ")]
    graph = c.copy()
    graph.entities[i].attributes.append(Attribute(word, kind=category))
    return fix_articles(c.caption, edits), graph


def _add_att_choices(
    rewriter: Rewriter, c: RewriteContext
) -> list[tuple[int, str, list[tuple[str, int]]]]:
    """``(entity, category, pool)`` for each noun phrase and category an attribute can be
    added in. Real captions rarely stack modifiers, and the additions a reader can check
    in an image are colours, materials and shapes (an added ``large`` or ``old`` is often
    true; a size or an age is added only to a phrase that can take none of those): so
    only phrases with at most one modifier before the noun, none of that
    category, and only a value :func:`_uncommon_values` finds seen on the noun yet not
    one that commonly holds (``blue sky``, ``silver knife``, ``large mountain``: still
    true of a typical image; ``grey gravel`` on thin evidence: may well be).
    People take none (``a silver person``, ``a metal man``; ``an old woman`` is often
    true)."""
    out = []
    for i in c.entities_with_phrase():
        entity = c.graph.entities[i]
        have = {attribute_category(a.text) for a in entity.attributes}
        options = []
        if len(_pre_head(c, i)) > 1 or ("other" in have and _pre_head(c, i)):
            continue
        if "noun.person" in noun_classes(entity.name) or compound_tail(c, i):
            continue
        seen = rewriter.vocab.noun_attributes.get(lemma(entity.name), Counter())
        checkable = False  # a colour, material or shape the noun is seen with
        for category in (*ADDED_CATEGORIES, *FALLBACK_CATEGORIES):
            if category in FALLBACK_CATEGORIES and (options or checkable):
                break  # a size or an age only where nothing checkable could go
            if category in have:
                continue
            ranked = sorted(
                ((w, n) for w, n in seen.items() if attribute_category(w) == category),
                key=lambda x: (-x[1], x[0]),
            )
            checkable |= bool(ranked) and ranked[0][1] >= MIN_CANDIDATE_COUNT
            if category in FALLBACK_CATEGORIES:
                pool = _unusual_values(ranked) if _habitual(rewriter, entity.name, ranked) else []
            else:
                pool = _uncommon_values(ranked)
            if pool:
                options.append((i, category, pool))
        out += options
    return out


def _habitual(rewriter: Rewriter, noun: str, ranked: list[tuple[str, int]]) -> bool:
    """Whether captions of ``noun`` habitually state a value of this category (in at
    least :data:`STATED_SHARE` of its mentions), so that an added one is a checkable
    contrast (the rendered shapes' ``small`` / ``large``) rather than an unstated size
    that a typical image may well show (``large pizza``, ``long horns``: a size is given
    for under 5 % of real pizzas and horns)."""
    mentions = rewriter.vocab.objects.get(lemma(noun), 0)
    return mentions > 0 and sum(n for _, n in ranked) >= STATED_SHARE * mentions


def _unusual_values(ranked: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sizes or ages an added attribute may take on a noun (where no colour, material or
    shape can be added): seen on it at least :data:`MIN_CANDIDATE_COUNT` times and in at
    least :data:`MIN_ATTRIBUTE_SHARE` of them, and not its usual value (over half of
    :data:`USUAL_EVIDENCE` or more).

    Args:
        ranked: ``[(value, count)]`` of the category on the noun, most common first.

    Returns:
        The allowed ``(value, count)`` pairs, in the order given.
    """
    total = sum(n for _, n in ranked)
    return [
        (w, n)
        for w, n in ranked
        if n >= MIN_CANDIDATE_COUNT
        and n >= MIN_ATTRIBUTE_SHARE * total
        and (n <= USUAL_SHARE * total or total < USUAL_EVIDENCE)
    ]


def _colour_compound(c: RewriteContext, i: int, x: int) -> bool:
    """Whether colour ``x`` of entity ``i`` is one word of a multi-word colour: another
    colour of the same entity right beside it (``olive green``, ``navy blue``), which a
    swap would split (``olive white towel with green tags``)."""
    attributes = c.graph.entities[i].attributes
    a = attributes[x]
    if not colour_word(a.text) or not valid_span(a.span, c.caption):
        return False
    for k, b in enumerate(attributes):
        if k == x or not colour_word(b.text) or not valid_span(b.span, c.caption):
            continue
        left, right = sorted((a.span, b.span))  # type: ignore[type-var]
        if left[1] <= right[0] and not c.caption[left[1] : right[0]].strip():
            return True
    return False


def _uncommon_values(ranked: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Colours, materials or shapes an added attribute may take on a noun: seen on it at
    least :data:`MIN_CANDIDATE_COUNT` times, yet neither its most common value of the
    category nor one that commonly holds (with its WordNet synonyms and hyponyms, more than
    :data:`COMMON_SHARE` of the category: ``grey`` with ``gray``), since a typical image
    of the noun may well show those (``silver knife``, ``white plane``, ``grey gravel``).

    Args:
        ranked: ``[(value, count)]`` of the category on the noun, most common first.

    Returns:
        The allowed ``(value, count)`` pairs, in the order given.
    """
    if not ranked:
        return []
    total = sum(n for _, n in ranked)
    top = ranked[0][0]
    out = []
    for w, n in ranked:
        if n < MIN_CANDIDATE_COUNT or w == top or related(w, top, "a"):
            continue
        group = sum(m for v, m in ranked if v == w or related(v, w, "a"))
        if group <= COMMON_SHARE * total:
            out.append((w, n))
    return out


def _pre_head(c: RewriteContext, i: int) -> list[Attribute]:
    """The attributes written before entity ``i``'s noun, counts left out."""
    phrase = c.phrases[i]
    if phrase is None:
        return []
    return [
        a
        for a in c.graph.entities[i].attributes
        if valid_span(a.span, c.caption)
        and a.span[1] <= phrase.head[0]  # type: ignore[index]
        and attribute_category(a.text) != "count"
    ]


def _count_of(c: RewriteContext, i: int) -> tuple[int, tuple[int, int]] | None:
    """Entity ``i``'s number and the span of the word that states it (a numeral, or the
    article ``a``/``an`` of a singular noun); ``None`` when no word states it."""
    phrase = c.phrases[i]
    if phrase is None or phrase.determiner is None:
        return None
    start, end = phrase.determiner
    word = c.caption[start:end].lower()
    if word in ("a", "an"):
        return (1, (start, end)) if not c.plural(i) else None
    if word in WORD_NUMBERS:
        return WORD_NUMBERS[word], (start, end)
    return None


def _described(c: RewriteContext, i: int, attribute: Attribute) -> str:
    """The noun an attribute of entity ``i`` describes: ``hair`` for ``white haired man``
    and ``gray headed man`` (a colour moved there must be a hair colour), ``eye`` for
    ``blue eyed``, else the entity's own noun."""
    if valid_span(attribute.span, c.caption):
        after = c.caption[attribute.span[1] :].lstrip(" -").lower()  # type: ignore[index]
        for suffix, part in _DESCRIBED_PARTS:
            if after.startswith(suffix):
                return part
    return c.graph.entities[i].name


_DESCRIBED_PARTS = (("haired", "hair"), ("headed", "hair"), ("eyed", "eye"),
                    ("skinned", "skin"), ("bearded", "beard"), ("furred", "fur"))  # fmt: skip
"""``white haired man``: the colour is the hair's, and must be seen on hair."""


def _counts_cross(c: RewriteContext, r: Relation) -> bool:
    """Whether counts may swap across relation ``r``: both ends living things (``two sheep
    standing next to a man`` → ``a sheep standing next to two men``), and neither carries
    or holds the other (never ``two people on a horse`` → ``a person on two horses``), nor
    is the other's place."""
    entities = c.graph.entities
    if not (is_living(entities[r.subject].name) and is_living(entities[r.object].name)):
        return False
    words = r.predicate.lower().split()
    if " ".join(words) in CARRIED_ON or " ".join(words[-1:]) in CARRIED_ON:
        return False
    return not is_locative(r.predicate) or is_symmetric(r.predicate)
