"""Hand-built scene graphs with spans for the rewrite tests (no spaCy)."""

from __future__ import annotations

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph
from unimo_kit.rewrite.edits import apply_edits
from unimo_kit.rewrite.negatives import Rewriter
from unimo_kit.rewrite.vocab import Vocabulary


def graph_of(
    caption: str,
    entities: list[tuple[str, list[str]]],
    relations: list[tuple[int, str, int, str]] = (),
    counts: dict[int, tuple[str, int]] | None = None,
) -> SceneGraph:
    """A graph with spans found by searching ``caption`` left to right.

    Args:
        entities: ``(head word as written, [attribute words as written])`` in caption order;
            attributes are searched before the head from the previous cursor.
        relations: ``(subject, surface words, object, normalised predicate)``.
        counts: entity index → ``(numeral as written, value)``.
    """
    graph = SceneGraph(text=caption)
    cursor = 0
    lower = caption.lower()
    for index, (head, attributes) in enumerate(entities):
        attrs = []
        count = None
        if counts and index in counts:
            word, value = counts[index]
            start = lower.index(word.lower(), cursor)
            attrs.append(Attribute(str(value), (start, start + len(word)), "count"))
            count = value
            cursor = start + len(word)
        for attribute in attributes:
            start = lower.index(attribute.lower(), cursor)
            attrs.append(Attribute(attribute.lower(), (start, start + len(attribute))))
            cursor = start + len(attribute)
        start = lower.index(head.lower(), cursor)
        graph.entities.append(Entity(head.lower(), attrs, (start, start + len(head)), count))
        cursor = start + len(head)
    for subject, surface, obj, predicate in relations:
        start = lower.index(surface.lower())
        graph.relations.append(Relation(subject, predicate, obj, (start, start + len(surface))))
    return graph


def evidence(*graphs: str, times: int = 3) -> Vocabulary:
    """A vocabulary counting each FACTUAL-format graph ``times`` times."""
    return Vocabulary.build(SceneGraph.from_factual(g) for g in list(graphs) * times)


def negative_texts(rewriter: Rewriter, caption: str, graph: SceneGraph, seeds: int = 8) -> set[str]:
    """Every negative text ``rewriter`` makes of ``caption`` over ``seeds`` seeds, each checked
    to be its edits applied to the caption."""
    out = set()
    for seed in range(seeds):
        rewriter.seed = seed
        for n in rewriter.negatives(caption, graph, key="k"):
            assert apply_edits(caption, n["edits"]) == n["text"]
            out.add(n["text"])
    return out
