"""Makers of the object types: ``replace-obj`` (another noun attested in the same context),
``add-obj`` (a new object of the anchor's kind conjoined to a noun phrase) and ``swap-obj``
(two parallel objects exchange places, or the two ends of a relation), with the pools they
draw from and the reasons a swap is refused (:func:`swap_obj_review`)."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from unimo_kit.data.scene_graph import (
    Entity,
    Relation,
    SceneGraph,
)
from unimo_kit.rewrite.edits import (
    Edit,
    Phrase,
    copy_graph,
    fix_articles,
    fix_copula,
    fix_existential,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    WORD_NUMBERS,
    article,
    copy_case,
    is_plural,
    pluralize,
)
from unimo_kit.rewrite.negatives.caption import (
    COORDINATORS,
    agreement_edits,
    bound_slot,
    compound_tail,
    listed_together,
    recase,
    same_roles,
)
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.registry import Made
from unimo_kit.rewrite.negatives.thresholds import (
    MAX_ADDITION_LIFT,
    MAX_SCENE_LIFT,
    MIN_CANDIDATE_COUNT,
    MIN_COOCCURRENCE,
    TYPICAL_REVERSAL,
)
from unimo_kit.rewrite.negatives.words import (
    CONTENT_PHRASES,
    FEMININE,
    HELD_VERBS,
    LIVING_CLASSES,
    MASCULINE,
    MASS_NOUNS,
    MUTUAL_VERBS,
    PASSIVE_VERBS,
    PREPOSITIONS,
    PRONOUNS,
    SCENE_WORDS,
    body_mismatch,
    finite_singular,
    first_class,
    head_word,
    is_clothing,
    is_directed,
    is_living,
    is_locative,
    is_person,
    is_substance,
    is_symmetric,
    living_kind,
    not_an_object,
    proper_name,
    role_for_identity,
    same_thing,
    single_seat,
    whole_object,
)
from unimo_kit.rewrite.vocab import (
    INVERSE,
    SYMMETRIC,
    attribute_category,
    lemma,
    morphy,
    noun_classes,
    part_related,
    related,
    relation_category,
)

if TYPE_CHECKING:
    from unimo_kit.rewrite.negatives.rewriter import Rewriter


def _object_pool(
    rewriter: Rewriter, name: str, features: list[tuple[str, ...]]
) -> list[tuple[str, int]]:
    """Nouns that could stand where ``name`` stands: of the same WordNet kind and attested
    with all its context (a cat for a dog on a sofa), or attested exactly (every relation
    seen as a triple with this noun) — which is how the rendered shapes of the synthetic
    world, which WordNet files apart, replace each other. Nouns seen fewer than
    :data:`MIN_CANDIDATE_COUNT` times are left out: rare words are mostly parser
    leftovers."""
    kinds = noun_classes(name)
    out = []
    possible = rewriter.possible_nouns(features)
    for w, n in rewriter.ranked_objects():
        if n < MIN_CANDIDATE_COUNT:
            break
        if possible is not None and w not in possible:
            continue
        same_kind = bool(kinds & noun_classes(w))
        if rewriter.fits(w, features, exact=not same_kind) if features else same_kind:
            out.append((w, n))
    return out


def _addition_pool(
    rewriter: Rewriter, anchor: str, features: list[tuple[str, ...]]
) -> list[tuple[str, int]]:
    """Nouns to conjoin to ``anchor``: of its WordNet kind, seen in a caption together
    with it (a rug beside a stove, not a motorbike beside an oven rack) and, where the
    anchor takes part in relations, seen in each of them exactly (``holding a ball`` →
    ``and a bat``, not ``and a knife``). Weighted by how often the two are seen together,
    so what is added is distributed like what real captions name side by side."""
    kinds = noun_classes(anchor)
    possible = rewriter.possible_nouns(features)
    seen = rewriter.vocab.cooccur.get(lemma(anchor), {})
    return [
        (w, together)
        for w, n in rewriter.ranked_objects()
        if n >= MIN_CANDIDATE_COUNT
        and (together := seen.get(w, 0)) >= MIN_CANDIDATE_COUNT
        and (possible is None or w in possible)
        and kinds & noun_classes(w)
        and rewriter.lift(anchor, w, together) <= MAX_ADDITION_LIFT
        and (not features or rewriter.fits(w, features, exact=True))
        and _seen_often(rewriter, w, features)
    ]


def _shown_with(rewriter: Rewriter, noun: str, others: list[str]) -> bool:
    """Whether ``noun`` goes with another object of the caption (named with it over
    :data:`MAX_SCENE_LIFT` times as often as chance): what a typical image of that
    object shows too (``windows on a bus`` → ``and mirrors``, ``a bus on the road`` →
    ``and a car``, ``a large building in background`` → ``and a hill``)."""
    for other in others:
        together = rewriter.vocab.cooccur.get(lemma(other), {}).get(noun, 0)
        if together and rewriter.lift(other, noun, together) > MAX_SCENE_LIFT:
            return True
    return False


def _seen_often(rewriter: Rewriter, noun: str, features: list[tuple[str, ...]]) -> bool:
    """Whether each relation feature is seen with ``noun`` as the very triple at least
    :data:`MIN_CANDIDATE_COUNT` times: a conjunct takes part in the anchor's relations,
    and one sighting is mostly a parser leftover (``sidewalks on the ground``, ``a
    bottle in a bathroom`` are each seen once)."""
    count = rewriter.vocab.triple_count
    return all(
        (count(noun, f[1], f[2]) if f[0] == "subj" else count(f[1], f[2], noun))
        >= MIN_CANDIDATE_COUNT
        for f in features
        if f[0] != "att"
    )


def replace_obj(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = c.entities_with_phrase()
    if not choices:
        return False
    i = rng.choice(choices)
    entity = c.graph.entities[i]
    head = c.phrases[i].head  # type: ignore[union-attr]
    old = c.caption[head[0] : head[1]]
    if proper_name(old):
        return None  # "nathan 's sign" → "pole 's sign": a name is no object
    present = {lemma(e.name) for e in c.graph.entities}
    others = sorted({lemma(e.name) for j, e in enumerate(c.graph.entities) if j != i} - {""})
    word = rewriter.pick(
        rng,
        rewriter.cached(("obj", i), lambda: _replacement_pool(rewriter, c, i, others), c),
        lambda w: (
            w in present
            or not_an_object(w)
            or related(w, entity.name, "n")
            or related(w, old, "n")
            or same_thing(w, entity.name)
            or _disagrees(c, i, w)
            or _holds_through(rewriter, c, i, w)
        ),
    )
    if word is None:
        return None
    plural = is_plural(old, morphy) or (entity.count or 1) > 1
    new = copy_case(old, pluralize(word) if plural else word)
    if c.caption[head[1] :].lstrip().startswith("'s") and new[-1:] == "s" != old[-1:]:
        return None  # "a men 's pair" → "a ladies 's pair"
    graph = c.copy()
    graph.entities[i].name = pluralize(word) if is_plural(entity.name, morphy) else word
    return fix_articles(c.caption, [Edit(head[0], head[1], old, new)]), graph


def _holds_through(rewriter: Rewriter, c: RewriteContext, i: int, new: str) -> bool:
    """Whether a spatial relation to entity ``i`` would still hold with ``new`` in its
    place because the old object itself is seen in that relation to ``new`` (``green
    peppers on the pizza`` → ``... on the plate``: pizzas are on plates, so what is on
    the pizza is on the plate too; ``a cup in a box`` → ``... in a truck``)."""
    old = c.graph.entities[i].name
    return any(
        r.object == i
        and relation_category(r.predicate) == "spatial"
        and rewriter.vocab.triple_count(old, r.predicate, new) > 0
        for r in c.graph.relations
    )


def _replacement_pool(
    rewriter: Rewriter, c: RewriteContext, i: int, others: list[str]
) -> list[tuple[str, int]]:
    """:meth:`_object_pool` for entity ``i``, kept to nouns that real captions name
    together with every other object of this caption (the reference table's
    co-occurrence counts, at least :data:`MIN_COOCCURRENCE` captions each: a spoon beside
    a bowl, not beside a fence), weighted by the least of those counts, so the filler is
    drawn as often as such scenes are described."""
    name = c.graph.entities[i].name
    features = rewriter.features(c, i)
    agent = is_living(name)
    body = first_class(name) == "noun.body"
    out = []
    substance = is_substance(name)
    for w, n in _object_pool(rewriter, name, features):
        if w in SCENE_WORDS:
            continue
        if role_for_identity(name, w):
            continue  # "the hand of a girl" → "of a player": a girl may be one
        if substance and not (is_substance(w) or w in MASS_NOUNS):
            continue  # "the yellow paint on the boat" → "the yellow banana"
        if (first_class(w) == "noun.body") != body:
            continue  # "a glass in his left hand" → "... in his door"
        if is_living(w) != agent and not _well_attested(rewriter, w, features):
            continue  # a person or an animal for a thing: "two mirrors and a dog on a bed"
        if not all(_seen_in_relation(rewriter, w, f) for f in features if f[0] != "att"):
            continue
        if others:
            seen = rewriter.vocab.cooccur.get(w, {})
            n = min(seen.get(o, 0) for o in others)
            if n < MIN_COOCCURRENCE:
                continue
        out.append((w, n))
    return out


def _well_attested(rewriter: Rewriter, noun: str, features: list[tuple[str, ...]]) -> bool:
    """Whether ``noun`` takes part in relations here, an action among them, each seen as
    the very triple at least :data:`MIN_CANDIDATE_COUNT` times (``planes flying in the
    sky`` for birds; a place alone, ``a pillow on the bed`` for a dog, is not enough)."""
    relations = [f for f in features if f[0] != "att"]
    predicate = {"subj": 1, "obj": 2}
    if not any(relation_category(f[predicate[f[0]]]) == "action" for f in relations):
        return False
    count = rewriter.vocab.triple_count
    return all(
        (count(noun, f[1], f[2]) if f[0] == "subj" else count(f[1], f[2], noun))
        >= MIN_CANDIDATE_COUNT
        for f in relations
    )


def _seen_in_relation(rewriter: Rewriter, noun: str, feature: tuple[str, ...]) -> bool:
    """A relation of the replaced object attested for ``noun``: as the very triple (or its
    inverse), or — where the other end is a person — with ``noun`` and any person (a
    woman rides what a man rides; a horse pulls a cart, not a man)."""
    v = rewriter.vocab
    if feature[0] == "subj":
        subject, predicate, obj, other = noun, feature[1], feature[2], feature[2]
    else:
        subject, predicate, obj, other = feature[1], feature[2], noun, feature[1]
    if v.triple_count(subject, predicate, obj):
        return True
    if predicate in INVERSE and v.triple_count(obj, INVERSE[predicate], subject):
        return True
    if is_person(other):
        new = "object" if feature[0] == "obj" else "subject"
        return v.relation_plausible(subject, predicate, obj, new=new)
    return False


def swap_obj(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = rewriter.cached(("swap-obj",), lambda: _swap_obj_choices(rewriter, c), c)
    if not choices:
        return False
    kind, a, b = rng.choice(choices)
    if kind == "parallel":
        return _exchange_phrases(rewriter, c, a, b)
    return _reverse_relation(rewriter, c, a)


def _swap_obj_choices(rewriter: Rewriter, c: RewriteContext) -> list[tuple[str, int, int]]:
    """``("parallel", i, j)``: two objects of one kind whose places carry different
    relations; ``("reverse", k, -1)``: relation ``k`` with its ends exchanged, only where
    the reversed relation is attested (``a cake cutting a woman`` is not)."""
    return [choice for choice, why in swap_obj_review(rewriter, c) if why is None]


def swap_obj_review(
    rewriter: Rewriter, c: RewriteContext
) -> list[tuple[tuple[str, int, int], str | None]]:
    """Every swap-obj candidate of the caption with why it is refused (``None``: made)."""
    usable = [i for i in c.entities_with_phrase() if not _has_outside_attributes(c, i)]
    out: list[tuple[tuple[str, int, int], str | None]] = []
    original = _graph_key(c.graph)
    for x, i in enumerate(usable):
        for j in usable[x + 1 :]:
            out.append((("parallel", i, j), _parallel_refusal(rewriter, c, i, j, original)))
    degree: Counter[int] = Counter()
    for r in c.graph.relations:
        degree.update({r.subject, r.object})
    for k, r in enumerate(c.graph.relations):
        if r.subject != r.object:
            out.append((("reverse", k, -1), _reverse_refusal(rewriter, c, k, degree)))
    return out


def _parallel_refusal(
    rewriter: Rewriter, c: RewriteContext, i: int, j: int, original: Counter[tuple[str, ...]]
) -> str | None:
    """Why objects ``i`` and ``j`` may not exchange places (``None``: they may)."""
    entities, relations = c.graph.entities, c.graph.relations
    pi, pj = c.phrases[i], c.phrases[j]
    if pi is None or pj is None or (pi.end > pj.start and pj.end > pi.start):
        return "phrases overlap"
    if bound_slot(c, i) or bound_slot(c, j):
        return "possessor, of-phrase or body part"
    ni, nj = lemma(entities[i].name), lemma(entities[j].name)
    if ni == nj or related(ni, nj, "n"):
        return "same or related noun"
    if not any(r.subject in (i, j) or r.object in (i, j) for r in relations):
        return "no relation: only the order changes"
    if any({r.subject, r.object} == {i, j} for r in relations):
        return "ends of one relation (see reverse)"
    if not (noun_classes(ni) & noun_classes(nj)):
        return "different kinds"  # a woman for a man, a cat for a dog; not a cake for a woman
    if not same_roles(c, i, j):
        return "different roles"
    between = c.caption[min(pi.end, pj.end) : max(pi.start, pj.start)]
    if between.strip().lower() in COORDINATORS:
        return "coordinated: only the order changes"  # "a suit and a shirt"
    if _places_of_one(c, i, j):
        return "two places of one thing"  # "walking across the street in a crosswalk"
    swapped = _swap_entities(c.graph, i, j)
    if _graph_key(swapped) == original:
        return "same scene"  # "a man and a woman on a bench"
    if not all(
        _moved_plausible(rewriter, swapped, r, {i, j})
        for r in swapped.relations
        if {r.subject, r.object} & {i, j}
    ):
        return "moved relation not attested"
    return None


def _reverse_refusal(
    rewriter: Rewriter, c: RewriteContext, k: int, degree: Counter[int]
) -> str | None:
    """Why relation ``k``'s two ends may not exchange places (``None``: they may)."""
    r = c.graph.relations[k]
    ps, po = c.phrases[r.subject], c.phrases[r.object]
    if ps is None or po is None or (ps.end > po.start and po.end > ps.start):
        return "phrases overlap"
    if bound_slot(c, r.subject) or bound_slot(c, r.object):
        return "possessor, of-phrase or body part"  # "the train on people 's platform"
    if is_symmetric(r.predicate):
        return "symmetric relation"  # "a woman standing next to a man"
    if degree[r.subject] > 1 or degree[r.object] > 1:
        return "an end in another relation"
    if valid_span(r.span, c.caption) and c.caption[r.span[0] : r.span[1]].lower() in (  # type: ignore[index]
        "of", "'s", "’s", "with",
    ):  # fmt: skip
        return "of / 's / with"  # "eye of a giraffe" -> "a giraffe of eye" is not English
    if ps.text(c.caption).lower() == po.text(c.caption).lower():
        return "same phrase"
    if _scene_key(_swap_entities(c.graph, r.subject, r.object)) == _scene_key(c.graph):
        return "same scene"  # "a zebra chasing another zebra", "one box inside another box"
    if r.predicate.lower().split()[-1:] in (["between"], ["among"], ["amongst"]):
        return "between"  # "a tree between buildings" -> "buildings between a tree"
    if relation_category(r.predicate) == "other":
        return "predicate of no category"  # "with", "have": reversing is rarely English
    if (r.predicate.lower().split() or [""])[0] in PASSIVE_VERBS | MUTUAL_VERBS:
        return "passive or mutual predicate"  # "leash attached to dog", "talking to"
    if _in_list(c, r.subject) or _in_list(c, r.object):
        return "an end in a list"  # "a tree and bench in the snow"
    subject, obj = c.graph.entities[r.subject].name, c.graph.entities[r.object].name
    if lemma(subject) in MASS_NOUNS or lemma(obj) in MASS_NOUNS:
        return "a substance"  # "trees in the snow" -> "the snow in trees"
    reversed_count = rewriter.vocab.triple_count(obj, r.predicate, subject)
    count = rewriter.vocab.triple_count(subject, r.predicate, obj)
    if reversed_count > TYPICAL_REVERSAL * max(count, 1):
        return "the reversal is the usual scene"  # "a pole on the street light"
    if reversed_count >= max(2, 0.2 * count):
        return None
    if _living_reversible(rewriter, subject, r.predicate, obj):
        return None  # "a man watching a woman" -> "a woman watching a man"
    return "reversed relation not attested"  # "the wall is on shelves"


def _living_reversible(rewriter: Rewriter, subject: str, predicate: str, obj: str) -> bool:
    """Whether a relation between two people, or two animals, may be turned round
    without the triple itself being seen: both ends of one kind (by the first WordNet
    sense of their head word), neither a part of the other (``tail``, ``paws``), a
    directed relation (``behind``, ``above``, ``watching``, ``chasing``: never ``next
    to`` or ``talking to``, which hold both ways), and the reversed relation attested
    for nouns of those kinds (:meth:`Vocabulary.relation_plausible`). ``man watching
    small child`` → ``small child watching man``; never ``a man riding a horse`` →
    ``a horse riding a man`` (a person and an animal) nor ``a woman holding a child``
    (holding is no directed relation here: who can hold whom depends on age)."""
    kind = first_class(head_word(subject))
    if kind not in LIVING_CLASSES or first_class(head_word(obj)) != kind:
        return False
    if is_person(subject) != is_person(obj) or part_related(subject, obj):
        return False
    if "noun.body" in noun_classes(head_word(subject)) | noun_classes(head_word(obj)):
        return False
    if not is_directed(predicate):
        return False
    return rewriter.vocab.relation_plausible(obj, predicate, subject, new="both")


def _moved_plausible(rewriter: Rewriter, graph: SceneGraph, r: Relation, moved: set[int]) -> bool:
    """Whether relation ``r`` of ``graph`` is attested with the moved end as the new one:
    a place (a locative relation: ``on``, ``in a park``) or a relation of no category
    (``with``) as the very triple, since what is on a bench is not on a park and a
    building with windows is no building with a camera; an action by a noun of the same
    kind."""
    subject, obj = graph.entities[r.subject].name, graph.entities[r.object].name
    if is_locative(r.predicate) or relation_category(r.predicate) == "other":
        return rewriter.vocab.triple_count(subject, r.predicate, obj) >= 1
    new = "subject" if r.subject in moved else "object"
    return rewriter.vocab.relation_plausible(subject, r.predicate, obj, new=new)


def _exchange_phrases(rewriter: Rewriter, c: RewriteContext, i: int, j: int) -> Made:
    first, second = sorted([i, j], key=lambda e: c.phrases[e].start)  # type: ignore[union-attr]
    p1, p2 = c.phrases[first], c.phrases[second]
    assert p1 is not None and p2 is not None
    t1, t2 = p1.text(c.caption), p2.text(c.caption)
    edits = [
        Edit(p1.start, p1.end, t1, recase(t2, t1, p1.start)),
        Edit(p2.start, p2.end, t2, recase(t1, t2, p2.start)),
    ]
    edits += agreement_edits(c, p1, c.plural(first), c.plural(second))
    edits += agreement_edits(c, p2, c.plural(second), c.plural(first))
    return edits, _swap_entities(c.graph, first, second)


def _reverse_relation(rewriter: Rewriter, c: RewriteContext, k: int) -> Made:
    r = c.graph.relations[k]
    first, second = sorted([c.phrases[r.subject], c.phrases[r.object]], key=lambda p: p.start)  # type: ignore[arg-type, return-value]
    t1, t2 = first.text(c.caption), second.text(c.caption)
    new1, new2 = recase(t2, t1, first.start), recase(t1, t2, second.start)
    edits = [Edit(first.start, first.end, t1, new1), Edit(second.start, second.end, t2, new2)]
    subject_first = c.phrases[r.subject] is first
    if subject_first:
        plural_before = c.plural(r.subject)
        plural_after = c.plural(r.object)
        if plural_before != plural_after:
            fix = fix_copula(c.caption, first.end, plural_after)
            if fix is not None:
                edits.append(fix)
    # "there is/are" + first phrase: the copula agrees with the phrase moved there
    fix = fix_existential(
        c.caption, first.start, c.plural(r.object if subject_first else r.subject)
    )
    if fix is not None:
        edits.append(fix)
    graph = c.copy()
    graph.relations[k] = Relation(r.object, r.predicate, r.subject, r.span)
    return edits, graph


def add_obj(rewriter: Rewriter, c: RewriteContext, rng: random.Random) -> Made:
    choices = rewriter.cached(("add-obj",), lambda: _add_obj_anchors(rewriter, c), c)
    if not choices:
        return False
    anchor = rng.choice(choices)
    phrase = c.phrases[anchor]
    assert phrase is not None
    present = [e.name for e in c.graph.entities]
    others = [e.name for j, e in enumerate(c.graph.entities) if j != anchor]
    entity = c.graph.entities[anchor]
    kind = living_kind(entity.name)  # beside a person a person, beside an animal an animal
    features = [f for f in rewriter.features(c, anchor) if f[0] != "att"]  # new: no attributes
    noun = rewriter.pick(
        rng,
        rewriter.cached(
            ("add-obj", anchor), lambda: _addition_pool(rewriter, entity.name, features), c
        ),
        lambda w: (
            not_an_object(w)
            or not whole_object(w)
            or not (noun_classes(w) & noun_classes(entity.name))
            or body_mismatch(w, entity.name)
            or (kind != "thing" and living_kind(w) != kind)
            or _shown_with(rewriter, w, others)
            or any(w == lemma(p) or related(w, p, "n") or part_related(w, p) for p in present)
        ),
    )
    if noun is None:
        return None
    plural = c.plural(anchor) and phrase.determiner is None
    new_entity = Entity(pluralize(noun) if plural else noun)
    words = new_entity.name
    insert = " and " + _conjunct(c.caption, phrase, words, plural)
    edits = [Edit(phrase.end, phrase.end, "", insert)]
    if any(r.subject == anchor for r in c.graph.relations) or phrase.start == 0:
        fix = fix_copula(c.caption, phrase.end, True)
        if fix is not None:
            edits.append(fix)
    fix = fix_existential(c.caption, phrase.start, True)
    if fix is not None:
        edits.append(fix)
    graph = c.copy()
    graph.entities.append(new_entity)
    new = len(graph.entities) - 1
    for r in c.graph.relations:
        if r.subject == anchor:
            graph.relations.append(Relation(new, r.predicate, r.object))
        if r.object == anchor:
            graph.relations.append(Relation(r.subject, r.predicate, new))
    return edits, graph


def _add_obj_anchors(rewriter: Rewriter, c: RewriteContext) -> list[int]:
    """Noun phrases a coordinated object can follow: any phrase whose head is not the
    first part of a compound or possessive, and not a subject whose verb would then
    disagree (``a man rides`` → ``a man and a woman rides``)."""
    out = []
    for i in c.entities_with_phrase():
        phrase = c.phrases[i]
        assert phrase is not None
        after = c.caption[phrase.end :]
        if after[:1].isalnum() or after.lstrip().startswith(("'s", "’s", "'", "’")):
            continue
        next_word = after.split(" ", 2)[1] if after.startswith(" ") and after.strip() else ""
        if next_word.lower() in ("and", "or", "&", "of"):
            continue  # already coordinated, or the head of "picture of people"
        if next_word.lower() == "to" and not any(
            valid_span(r.span, c.caption) and r.span[0] == phrase.end + 1  # type: ignore[index]
            for r in c.graph.relations
        ):
            continue  # a fragment: "two windows to building" (not "... to the left of")
        if compound_tail(c, i) or _noun_modifier(c, i):
            continue  # "sand man and woman", "a white kid bed and truck": one compound
        if any(p is not None and p.start == phrase.end + 1 for p in c.phrases):
            continue  # "sandy beach young girl is standing on": a reduced relative
        if _unparsed_object(c, i) or _lost_relation_after(c, phrase):
            continue  # "they are in a restaurant and a table": the relation is lost
        if is_clothing(c.graph.entities[i].name):
            continue  # "wearing a black shirt and a jacket": one wears several garments
        before = c.caption[: phrase.start].lower().split()
        if before[-1:] and before[-1] in ("is", "are", "was", "were"):
            continue  # a predicate noun: "the photo is an outdoor scene"
        if before[-1:] and before[-1] in ("that", "which", "who", "where"):
            continue  # "sidewalk that the people and the seat are walking on"
        if before[-1:] == ["of"]:
            continue  # "the corner of the road and the paint": the wrong head
        if before[-1:] and before[-1] in ("and", "or", "&"):
            continue  # "a salad and apple and banana": already coordinated
        rest = after.lower().split()
        if rest[:1] and rest[0] in ("that", "who", "which"):
            continue  # "a boy and a woman that is riding": the clause would disagree
        subject = any(r.subject == i for r in c.graph.relations) or phrase.start == 0
        if subject and set(rest) & {"his", "her", "its"}:
            continue  # "the man and the woman have a glass in his hand"
        if any(
            r.subject == i
            and " " not in r.predicate.strip()
            and relation_category(r.predicate) == "action"
            and not c.plural(r.object)
            for r in c.graph.relations
        ):
            continue  # "a man and a girl holding a donut": two people, one thing held
        if any(r.object == i and is_locative(r.predicate) for r in c.graph.relations):
            continue  # a place: "sitting on a bench and a ground", "on a mountain and a water"
        if any(
            r.object == i and lemma(r.predicate.split(" ", 1)[0]) not in HELD_VERBS
            for r in c.graph.relations
        ):
            continue  # "hanging from a pole and a building", "driving a car and a train"
        if subject and next_word and finite_singular(next_word):
            continue
        if _fronted(c, i):
            continue  # "the chair the women and the man is sitting on": a reduced relative
        if is_living(c.graph.entities[i].name) and any(
            r.subject == i
            and single_seat(c.graph.entities[r.object].name)
            and not c.plural(r.object)
            for r in c.graph.relations
        ):
            continue  # "a cat and a dog on a chair": the holder takes one occupant
        if any(p in after.lower() for p in CONTENT_PHRASES) or any(
            r.subject == i and " ".join(r.predicate.lower().split()) in CONTENT_PHRASES
            for r in c.graph.relations
        ):
            continue  # "the road and the motorcycle are made of dirt"
        out.append(i)
    return out


def _fronted(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i`` is a subject whose relation's object comes before it in the
    caption, or an object whose relation's subject comes after it: a reduced relative or a
    fronted object (``black shirt the man is wearing``), where a conjunct lands inside it."""
    own = c.phrases[i]
    assert own is not None
    for r in c.graph.relations:
        other = r.object if r.subject == i else r.subject if r.object == i else None
        if other is None or other == i or c.phrases[other] is None:
            continue
        start = c.phrases[other].start  # type: ignore[union-attr]
        if (r.subject == i and start < own.start) or (r.object == i and start > own.start):
            return True
    return False


def _graph_key(graph: SceneGraph) -> Counter[tuple[str, ...]]:
    """A graph as a multiset of lemmatised tuples (what a swap must change)."""
    out: Counter[tuple[str, ...]] = Counter()
    for e in graph.entities:
        out[(lemma(e.name), *sorted(a.text.lower() for a in e.attributes))] += 1
    for r in graph.relations:
        ends = [
            (lemma(e.name), *sorted(a.text.lower() for a in e.attributes))
            for e in (graph.entities[r.subject], graph.entities[r.object])
        ]
        if r.predicate.lower() in SYMMETRIC:  # "a cat next to a dog" is "a dog next to a cat"
            ends.sort()
        out[(*ends[0], "|", r.predicate.lower(), "|", *ends[1])] += 1
    return out


def _swap_entities(graph: SceneGraph, i: int, j: int) -> SceneGraph:
    """``graph`` with the contents (name, attributes, count) of entities ``i`` and ``j``
    exchanged: what moving their noun phrases does to the scene."""
    out = copy_graph(graph)
    a, b = out.entities[i], out.entities[j]
    out.entities[i] = Entity(b.name, b.attributes, a.span, b.count)
    out.entities[j] = Entity(a.name, a.attributes, b.span, a.count)
    return out


def _has_outside_attributes(c: RewriteContext, i: int) -> bool:
    """Whether an attribute of entity ``i`` stands outside its noun phrase (``a man wearing
    yellow``): moving the phrase would leave it behind."""
    phrase = c.phrases[i]
    if phrase is None:
        return True
    return any(
        not valid_span(a.span, c.caption)
        or not (phrase.start <= a.span[0] and a.span[1] <= phrase.end)  # type: ignore[index]
        for a in c.graph.entities[i].attributes
    )


def _unparsed_object(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i`` follows a preposition yet is the object of no relation of the
    graph: the parser lost what it is the place of (``they are in a restaurant``, ``grout
    in between tiles``), so a conjunct cannot be told to fit (``... and a table``)."""
    phrase = c.phrases[i]
    if phrase is None:
        return False
    before = c.caption[: phrase.start].lower().split()
    if not before or before[-1] not in PREPOSITIONS:
        return False
    return not any(r.object == i for r in c.graph.relations)


def _lost_relation_after(c: RewriteContext, phrase: Phrase) -> bool:
    """Whether the word after a phrase is a preposition or ``has`` that starts no relation
    of the graph: the parser lost what follows (``arched window on building`` read as one
    object), so a conjunct cannot be told to fit (``arched window and truck on building``)."""
    after = c.caption[phrase.end :]
    words = after.split()
    if not words or not after[:1].isspace():
        return False
    word = words[0].lower()
    if word not in PREPOSITIONS and word not in ("has", "have"):
        return False
    start = phrase.end + len(after) - len(after.lstrip())
    return not any(
        valid_span(r.span, c.caption) and r.span[0] <= start < r.span[1]  # type: ignore[index]
        for r in c.graph.relations
    )


def _noun_modifier(c: RewriteContext, i: int) -> bool:
    """Whether the word right before entity ``i``'s head is an attribute that WordNet knows
    only as a noun (``kid bed``, ``tennis court``): a noun compound, which a conjunct after
    the head would split (``a white kid bed and truck``)."""
    phrase = c.phrases[i]
    if phrase is None:
        return False
    for a in c.graph.entities[i].attributes:
        if not valid_span(a.span, c.caption) or attribute_category(a.text) != "other":
            continue
        if c.caption[a.span[1] : phrase.head[0]].strip():  # type: ignore[index]
            continue
        word = a.text.lower()
        if word.isalpha() and morphy(word, "n") and not (morphy(word, "a") or word.endswith("ed")):
            return True
    return False


def _in_list(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s phrase is a conjunct of a list (``a tree and bench``)."""
    return any(listed_together(c, i, j) for j in range(len(c.graph.entities)) if j != i)


def _places_of_one(c: RewriteContext, i: int, j: int) -> bool:
    """Whether ``i`` and ``j`` are both places (objects of locative relations) of one same
    subject: exchanged, the places of one thing say the same or nonsense (``walking across
    the street in a crosswalk``, ``a teddy bear on a park in a bench``)."""
    places: dict[int, set[int]] = {}
    for r in c.graph.relations:
        if r.object in (i, j) and is_locative(r.predicate):
            places.setdefault(r.subject, set()).add(r.object)
    return any(found == {i, j} for found in places.values())


def _scene_key(graph: SceneGraph) -> Counter[tuple[str, ...]]:
    """:func:`_graph_key` with a count of one left out (``one box``, ``another box`` and
    ``a box`` are the same thing)."""
    out = copy_graph(graph)
    for entity in out.entities:
        entity.attributes = [a for a in entity.attributes if a.text not in ("1", "one")]
    return _graph_key(out)


def _conjunct(caption: str, phrase: Phrase, words: str, plural: bool) -> str:
    """The new conjunct after ``phrase``, with a determiner like the anchor's: bare after a
    bare noun (``trees and bushes``, ``stove and rug``), ``the`` after ``the``, else ``a``/``an``
    (``a man and a woman``); plural nouns stay bare."""
    if plural:
        return words
    if phrase.determiner is None:
        return words
    determiner = caption[phrase.determiner[0] : phrase.determiner[1]].lower()
    if determiner == "the":
        return f"the {words}"
    return f"{article(words)} {words}"


def _doer_of(c: RewriteContext, noun: str) -> bool:
    """Whether ``noun`` is the doer of a verb of the caption (``skier`` where someone is
    ``skiing``, ``rider`` ... ``riding``): then it says what the caption says."""
    w = lemma(noun)
    if not w.endswith("er"):
        return False
    for r in c.graph.relations:
        verb = r.predicate.lower().split(" ", 1)[0]
        if w in (verb + "er", verb + "r", verb + verb[-1:] + "er"):
            return True
    return f"{w[:-2]}ing" in c.caption.lower()  # skier/skiing, rider/riding, batter/batting


def _disagrees(c: RewriteContext, i: int, word: str) -> bool:
    """Whether ``word`` in place of entity ``i`` would clash with the rest of the caption: a
    gendered pronoun that then points at the other sex (``a woman talking on his phone``), or
    a mass noun after ``a``/``an`` or a numeral (``a food``), a count noun for a mass noun
    after ``of`` (``a plate of broccoli`` → ``a plate of napkin``), or the doer of the
    caption's verb (``the man is skiing`` → ``the skier is skiing``)."""
    w = lemma(word)
    if _doer_of(c, w):
        return True
    phrase = c.phrases[i]
    old = lemma(c.graph.entities[i].name)
    if (
        phrase is not None
        and old in MASS_NOUNS
        and w not in MASS_NOUNS
        and c.caption[: phrase.head[0]].lower().endswith("of ")
    ):
        return True
    if w in MASCULINE or w in FEMININE:
        words = {x.strip(".,;:!?'\"").lower() for x in c.caption.split()}
        for pronoun, sex in PRONOUNS.items():
            if pronoun in words and lemma(c.graph.entities[i].name) not in FEMININE | MASCULINE:
                continue  # "a person on his bike": the pronoun names no one we replace
            if pronoun in words and w not in sex:
                return True
    if w in MASS_NOUNS:
        phrase = c.phrases[i]
        if phrase is not None and phrase.determiner is not None:
            det = c.caption[phrase.determiner[0] : phrase.determiner[1]].lower()
            if det in ("a", "an") or det in WORD_NUMBERS:
                return True
        if (c.graph.entities[i].count or 1) > 1:
            return True
    return False
