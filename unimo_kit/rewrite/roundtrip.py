"""The round-trip check: a rewrite is kept only if re-parsing it gives the intended graph.

A rewrite edits the caption's words at the spans of its parsed graph and says what graph the
new text should have (the edited copy of the caption's graph). Parsing the new text again and
comparing the two catches what the edit did not mean to do: a "replacement" that turned into
a compound (``high rise building`` → ``hotel rise building``), an added object that attached
to the wrong head, a swap that the grammar reads another way. The comparison is on the tuple
sets of the parse metric (:func:`~unimo_kit.rewrite.parse_eval.tuple_set`: lemmatised objects,
attributes and relations), so the parser judges both texts by the same rules.

Reasons a candidate is dropped (counted per type in the stage's summary):

=====================  ===================================================================
``parse failed``       the parser could not read the new text
``edit not read back``  a tuple the edit meant to create is missing from the new parse
``other parts changed`` the edit is there, but the parse also changed something else
=====================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unimo_kit.data.scene_graph import SceneGraph

REASONS = ("parse failed", "edit not read back", "other parts changed")

Parse = Callable[[Sequence[str]], list[Any]]
"""Graphs for texts, in order (an exception object where a text fails), like
:meth:`~unimo_kit.rewrite.parser.SceneGraphParser.parse_each`."""


def roundtrip_problem(parsed: SceneGraph | Exception, intended: SceneGraph) -> str | None:
    """Why ``parsed`` (the new text's parse) is not the ``intended`` graph, or ``None``.

    Args:
        parsed: the parse of the rewritten text, or the exception the parser raised.
        intended: the caption's graph with the intended edit applied.

    Returns:
        One of :data:`REASONS`, or ``None`` when the tuple sets agree.
    """
    from unimo_kit.rewrite.parse_eval import tuple_set

    if isinstance(parsed, Exception):
        return "parse failed"
    got, want = tuple_set(parsed), tuple_set(intended)
    if got == want:
        return None
    return "edit not read back" if want - got else "other parts changed"


def roundtrip_filter(parse: Parse, candidates: Sequence[Any]) -> list[str | None]:
    """:func:`roundtrip_problem` for each candidate (objects with ``text`` and ``graph``; a
    candidate whose ``graph`` is ``None`` — a same-image caption, a back-translation — has
    nothing to check and passes). The texts are parsed in one batch.

    Returns:
        Per candidate, the reason it fails or ``None``.
    """
    checked = [i for i, c in enumerate(candidates) if c.graph is not None]
    parsed = parse([candidates[i].text for i in checked]) if checked else []
    out: list[str | None] = [None] * len(candidates)
    for i, graph in zip(checked, parsed, strict=True):
        out[i] = roundtrip_problem(graph, candidates[i].graph)
    return out
