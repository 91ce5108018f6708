"""Shared fixtures for the rewrite tests: hand-built graphs with spans (no spaCy), a small
synthetic world, and the spaCy scene-graph parser loaded once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph


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


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic world (seed 3, 40 images, 3 captions each)."""
    from unimo_kit.data.synth import generate_world

    out = tmp_path_factory.mktemp("rewrite_world")
    return generate_world(out, seed=3, n_images=40, captions_per_image=3, progress=False)


@pytest.fixture(scope="session")
def parser():
    """The spaCy scene-graph parser (loaded once)."""
    from unimo_kit.rewrite.parser import SceneGraphParser

    parser = SceneGraphParser()
    parser.parse("a red circle")  # load now, not inside a timed test
    return parser
