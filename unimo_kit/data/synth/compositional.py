"""The compositional test set: for each test image and each SugarCrepe category, a true
caption and a minimally edited caption that is verifiably false for the image.

Negatives are edited :class:`CaptionPlan` s realised by the same templates as positives (same
style, grammar and, except for ``add-*``, length), and each is checked with
:func:`satisfies` against the gold scene — never produced by the rewriter, so the test set
does not share the rewriter's mistakes. Categories (SugarCrepe, Hsieh et al., 2023):

- ``replace-obj``: one phrase's noun becomes another shape (``circle`` → ``star``);
- ``replace-att``: one colour or size becomes another;
- ``replace-rel``: the relation becomes another (``left of`` → ``right of``);
- ``swap-obj``: two phrases exchange nouns, keeping their adjectives in place;
- ``swap-att``: two phrases exchange (or pass on) a colour or size;
- ``add-obj``: a phrase naming a shape absent as described is added (``... and a green star``);
- ``add-att``: a phrase without a colour (size) gets one it does not have.

A category with no valid negative for an image (e.g. ``swap-*`` with one object) is skipped
and counted.
"""

from __future__ import annotations

import random
from dataclasses import replace

from unimo_kit.data.scene_graph import COMPOSITIONAL_CATEGORIES
from unimo_kit.data.synth.captions import (
    RELATION_TEMPLATES,
    Caption,
    CaptionPlan,
    NounPhrase,
    available_templates,
    realize,
    sample_caption,
)
from unimo_kit.data.synth.scene import Scene
from unimo_kit.data.synth.semantics import satisfies
from unimo_kit.data.synth.vocab import COLORS, RELATION_FORMS, RELATIONS, SHAPES, SIZES

CATEGORIES = COMPOSITIONAL_CATEGORIES  # SugarCrepe categories, in output order

_TWO_PHRASES = ("conj", "there-conj", *RELATION_TEMPLATES)
_POSITIVE_TEMPLATES: dict[str, tuple[str, ...] | None] = {
    "replace-obj": None,  # None: any template the scene can fill
    "replace-att": None,
    "replace-rel": RELATION_TEMPLATES,
    "swap-obj": _TWO_PHRASES,
    "swap-att": _TWO_PHRASES,
    "add-obj": ("np", "there", "conj", "there-conj"),
    "add-att": None,
}
_ADD_OBJ_TEMPLATE = {"np": "conj", "there": "there-conj", "conj": "list"}


def _with_phrase(plan: CaptionPlan, index: int, np: NounPhrase) -> CaptionPlan:
    phrases = list(plan.phrases)
    phrases[index] = np
    return replace(plan, phrases=tuple(phrases))


def _replace_obj(plan: CaptionPlan) -> list[CaptionPlan]:
    out = []
    for i, np in enumerate(plan.phrases):
        taken = {p.shape for p in plan.phrases}
        out += [_with_phrase(plan, i, replace(np, shape=s)) for s in SHAPES if s not in taken]
    return out


def _replace_att(plan: CaptionPlan) -> list[CaptionPlan]:
    out = []
    for i, np in enumerate(plan.phrases):
        if np.color:
            out += [_with_phrase(plan, i, replace(np, color=c)) for c in COLORS if c != np.color]
        if np.size:
            out += [_with_phrase(plan, i, replace(np, size=s)) for s in SIZES if s != np.size]
    return out


def _replace_rel(plan: CaptionPlan) -> list[CaptionPlan]:
    if plan.relation is None or plan.form is None:
        return []
    position = RELATION_FORMS[plan.relation].index(plan.form)
    out = []
    for relation in RELATIONS:
        if relation != plan.relation:
            forms = RELATION_FORMS[
                relation
            ]  # keep the style: "to the left of" -> "to the right of"
            out.append(replace(plan, relation=relation, form=forms[min(position, len(forms) - 1)]))
    return out


def _swap_obj(plan: CaptionPlan) -> list[CaptionPlan]:
    out = []
    phrases = plan.phrases
    for i in range(len(phrases)):
        for j in range(i + 1, len(phrases)):
            a, b = phrases[i], phrases[j]
            swapped = _with_phrase(plan, i, replace(a, shape=b.shape))
            out.append(_with_phrase(swapped, j, replace(b, shape=a.shape)))
    return out


def _swap_att(plan: CaptionPlan) -> list[CaptionPlan]:
    out = []
    phrases = plan.phrases
    for i in range(len(phrases)):
        for j in range(i + 1, len(phrases)):
            a, b = phrases[i], phrases[j]
            for kind in ("color", "size"):
                va, vb = getattr(a, kind), getattr(b, kind)
                if va != vb:
                    swapped = _with_phrase(plan, i, replace(a, **{kind: vb}))
                    out.append(_with_phrase(swapped, j, replace(b, **{kind: va})))
    return out


def _add_obj(plan: CaptionPlan, rng: random.Random) -> list[CaptionPlan]:
    template = _ADD_OBJ_TEMPLATE.get(plan.template)
    if template is None:
        return []
    taken = {p.shape for p in plan.phrases}
    out = []
    for shape in SHAPES:
        if shape not in taken:
            color = rng.choice(list(COLORS)) if rng.random() < 0.8 else None
            size = rng.choice(SIZES) if rng.random() < 0.3 else None
            np = NounPhrase(shape, color, size)
            out.append(replace(plan, template=template, phrases=(*plan.phrases, np)))
    return out


def _add_att(plan: CaptionPlan) -> list[CaptionPlan]:
    out = []
    for i, np in enumerate(plan.phrases):
        if np.color is None:
            out += [_with_phrase(plan, i, replace(np, color=c)) for c in COLORS]
        if np.size is None:
            out += [_with_phrase(plan, i, replace(np, size=s)) for s in SIZES]
    return out


def negative_plans(plan: CaptionPlan, category: str, rng: random.Random) -> list[CaptionPlan]:
    """All edits of ``plan`` of one category (not yet checked against any scene).

    Raises:
        ValueError: for an unknown category.
    """
    if category == "replace-obj":
        return _replace_obj(plan)
    if category == "replace-att":
        return _replace_att(plan)
    if category == "replace-rel":
        return _replace_rel(plan)
    if category == "swap-obj":
        return _swap_obj(plan)
    if category == "swap-att":
        return _swap_att(plan)
    if category == "add-obj":
        return _add_obj(plan, rng)
    if category == "add-att":
        return _add_att(plan)
    raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")


def make_example(
    scene: Scene, category: str, rng: random.Random, *, attempts: int = 40
) -> tuple[Caption, Caption] | None:
    """A ``(positive, negative)`` pair for ``scene`` and ``category``, or ``None`` if none
    was found in ``attempts`` random positives.

    The positive is true of the scene; the negative is an edit of it of the given category,
    differs from it in text and is false of the scene (both checked with :func:`satisfies`).
    """
    allowed = _POSITIVE_TEMPLATES[category]
    templates = [t for t in available_templates(scene) if allowed is None or t in allowed]
    if not templates:
        return None
    for _ in range(attempts):
        positive = sample_caption(scene, rng, rng.choice(templates))
        if positive is None:
            continue
        candidates = negative_plans(positive.plan, category, rng)
        rng.shuffle(candidates)
        for plan in candidates:
            try:
                negative = realize(plan)
            except ValueError:  # e.g. an edit that leaves a template without what it needs
                continue
            if negative.text != positive.text and not satisfies(scene, negative.graph):
                return positive, negative
    return None
