"""The semantic checker: is a caption's scene graph true of a scene?

:func:`satisfies` gives graphs an existential, closed-world reading:

- Each entity is matched to scene objects of its shape (the noun's lemma: ``squares`` and
  ``square`` both mean square; ``shape``/``object``/``thing``/``figure`` mean any shape) that
  have all its attributes (colours, sizes). A multi-word name such as ``"red circle"`` is read
  as attributes plus a head noun.
- A singular entity without a count stands for **one** such object (any one).
- A count ``n`` (an attribute ``"2"``/``"two"`` or ``Entity.count``) means the scene holds
  **exactly** ``n`` such objects; the entity stands for all of them.
- A plural noun without a count means at least two such objects; the entity stands for all.
- Different entities stand for disjoint objects.
- A relation holds for entities iff it holds between every member of the subject and every
  member of the object (:meth:`Scene.holds`, geometry in :mod:`.scene`). Predicates may be
  any normalised form (``"left of"``) or surface form (``"to the left of"``, ``"under"``).
- Anything outside the world's vocabulary (an unknown noun, attribute or predicate) makes the
  graph false: the scene cannot be shown to have it.

The graph is true iff some assignment of entities to objects meets all of this. With at most
four objects a brute-force search over assignments is instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from unimo_kit.data.scene_graph import Entity, SceneGraph
from unimo_kit.data.synth.scene import Scene, SceneObject
from unimo_kit.data.synth.vocab import (
    COLORS,
    GENERIC_NOUNS,
    PREDICATE_ALIASES,
    RELATIONS,
    SHAPES,
    SIZE_SYNONYMS,
    WORD_NUMBERS,
    is_plural,
    singular,
)


@dataclass(frozen=True)
class _Description:
    shape: str | None  # None: any shape
    colors: frozenset[str]
    sizes: frozenset[str]
    count: int | None
    plural: bool

    def matches(self, obj: SceneObject) -> bool:
        return (
            (self.shape is None or obj.shape == self.shape)
            and all(c == obj.color for c in self.colors)
            and all(s == obj.size for s in self.sizes)
        )


def normalise_predicate(predicate: str) -> str | None:
    """The normalised relation for a predicate string, or ``None`` if the world has none.
    A leading copula is ignored (``"is to the left of"`` → ``"left of"``)."""
    words = predicate.lower().split()
    if len(words) > 1 and words[0] in ("is", "are", "be"):
        words = words[1:]
    text = " ".join(words)
    if text in RELATIONS:
        return text
    return PREDICATE_ALIASES.get(text)


def _describe(entity: Entity) -> _Description | None:
    words = entity.name.lower().split()
    if not words:
        return None
    noun = singular(words[-1])
    if noun not in SHAPES and noun not in GENERIC_NOUNS:
        return None
    colors: set[str] = set()
    sizes: set[str] = set()
    counts: set[int] = set() if entity.count is None else {int(entity.count)}
    for text in [*words[:-1], *(a.text for a in entity.attributes)]:
        value = " ".join(text.lower().split())
        if value in COLORS:
            colors.add(value)
        elif value in SIZE_SYNONYMS:
            sizes.add(SIZE_SYNONYMS[value])
        elif value in WORD_NUMBERS:
            counts.add(WORD_NUMBERS[value])
        else:
            return None
    if len(counts) > 1:
        return None
    return _Description(
        shape=noun if noun in SHAPES else None,
        colors=frozenset(colors),
        sizes=frozenset(sizes),
        count=next(iter(counts)) if counts else None,
        plural=is_plural(words[-1]),
    )


def satisfies(scene: Scene, graph: SceneGraph) -> bool:
    """Whether ``graph`` is true of ``scene`` (semantics in the module docstring).

    Args:
        scene: a gold scene (e.g. from :func:`load_scenes`).
        graph: a caption's graph, built in code or read with ``SceneGraph.from_factual``;
            entity names may be singular or plural, predicates normalised or surface forms.

    Returns:
        ``True`` iff an assignment of entities to disjoint objects makes every attribute,
        count and relation hold.

    Example:
        >>> graph = SceneGraph.from_factual("( squares , is , 2 ) , ( squares , above , star )")
        >>> satisfies(scene, graph)  # exactly two squares, both above some star
    """
    options: list[list[tuple[int, ...]]] = []
    for entity in graph.entities:
        description = _describe(entity)
        if description is None:
            return False
        matching = tuple(i for i, o in enumerate(scene.objects) if description.matches(o))
        if description.count is not None:
            if len(matching) != description.count:
                return False
            options.append([matching])
        elif description.plural:
            if len(matching) < 2:
                return False
            options.append([matching])
        else:
            if not matching:
                return False
            options.append([(i,) for i in matching])

    relations: list[tuple[int, str, int]] = []
    for relation in graph.relations:
        predicate = normalise_predicate(relation.predicate)
        n = len(graph.entities)
        if predicate is None or not (0 <= relation.subject < n and 0 <= relation.object < n):
            return False
        relations.append((relation.subject, predicate, relation.object))

    def related(s: tuple[int, ...], predicate: str, o: tuple[int, ...]) -> bool:
        return all(scene.holds(predicate, a, b) for a in s for b in o)

    def search(k: int, used: frozenset[int], chosen: list[tuple[int, ...]]) -> bool:
        if k == len(options):
            return all(related(chosen[s], p, chosen[o]) for s, p, o in relations)
        for choice in options[k]:
            if used.isdisjoint(choice):
                chosen.append(choice)
                # prune: relations whose entities are both assigned already
                ok = all(
                    related(chosen[s], p, chosen[o]) for s, p, o in relations if s <= k and o <= k
                )
                if ok and search(k + 1, used | frozenset(choice), chosen):
                    return True
                chosen.pop()
        return False

    return search(0, frozenset(), [])
