"""The caption being rewritten, as a negative type's maker sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.edits import (
    Phrase,
    copy_graph,
)
from unimo_kit.rewrite.grammar import is_plural
from unimo_kit.rewrite.vocab import morphy


@dataclass
class RewriteContext:
    """A caption being rewritten, as a negative type's maker sees it: the caption, its graph
    (with spans into it), the phrase of each entity (``None`` where it has no span), and a
    per-caption cache for candidate pools (``Rewriter.cached``)."""

    caption: str
    graph: SceneGraph
    phrases: list[Phrase | None]
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # pools per caption

    def entities_with_phrase(self) -> list[int]:
        """The entities with a phrase in the caption (those a maker can edit)."""
        return [i for i, p in enumerate(self.phrases) if p is not None]

    def plural(self, i: int) -> bool:
        """Whether entity ``i`` is plural (its head word, or a count above one)."""
        entity = self.graph.entities[i]
        phrase = self.phrases[i]
        head = self.caption[phrase.head[0] : phrase.head[1]] if phrase else entity.name
        return is_plural(head, morphy) or (entity.count or 1) > 1

    def copy(self) -> SceneGraph:
        """A deep copy of the graph, for a maker to edit."""
        return copy_graph(self.graph)
