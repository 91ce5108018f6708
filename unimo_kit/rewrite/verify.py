"""Verifiers: what a stage may know, beyond the text, about whether a caption is true of an image.

A hard negative must be false of its image. Without the image that can only be made likely
(see ``docs/rewrite.md``); where gold annotations exist — the synthetic world's scenes — a
:class:`Verifier` says for certain, and the stages drop what it finds true. The rewrite stage
(``unimo rewrite --scenes``) and the mining stage (``unimo index mine --scenes``) see only this
interface; the synthetic world implements it
(:class:`unimo_kit.data.synth.verify.SceneChecker`), and so can anything else with gold graphs.

Two levels:

* :class:`Verifier` (the protocol) checks a *graph* against a pair's image: what the typed
  negatives need, whose edited graph is known.
* :class:`CaptionVerifier` checks caption *texts* (sentence negatives: captions of other
  images): it parses each distinct text once, with the parser the caller passes, and asks the
  verifier.

>>> from unimo_kit.data.synth.verify import SceneChecker
>>> checker = CaptionVerifier(SceneChecker("scenes.jsonl"), parser.parse_each)
>>> checker.true_of([("syn-000000", "there is a pink heart"), ("syn-000000", "a red star")])
[True, False]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.utils.select import first_per_group

T = TypeVar("T")

Parse = Callable[[Sequence[str]], list[Any]]
"""Graphs for texts, in order, an exception object where a text fails (the parser's
``parse_each``)."""


@runtime_checkable
class Verifier(Protocol):
    """Gold knowledge of some pairs' images."""

    def __contains__(self, pair_id: object) -> bool:
        """Whether there is anything to check this pair's captions against."""
        ...

    def holds(self, pair_id: str, graph: SceneGraph) -> bool:
        """Whether ``graph`` is true of the pair's image (asked only for pairs it contains)."""
        ...


def load_verifier(scenes: str | os.PathLike | None) -> Verifier | None:
    """The verifier the stages' ``--scenes FILE`` names: the synthetic world's gold scenes
    (a ``scenes.jsonl``); ``None`` for none. The one place a stage names the synthetic world."""
    if scenes is None:
        return None
    from unimo_kit.data.synth.verify import SceneChecker

    return SceneChecker(scenes)


class CaptionVerifier:
    """Whether caption texts are true of pairs' images: each distinct text is parsed once
    (``parse``: the caller's parser, e.g. ``SceneGraphParser().parse_each``) and its graph
    given to ``verifier``.

    Args:
        verifier: the gold knowledge (:class:`Verifier`).
        parse: graphs for texts (see :data:`Parse`).
    """

    def __init__(self, verifier: Verifier, parse: Parse):
        self.verifier = verifier
        self.parse = parse
        self._graphs: dict[str, Any] = {}

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self.verifier

    def true_of(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(pair id, caption)``: whether the caption's parsed graph holds in the
        pair's image. A caption the parser fails on counts as true (not safe as a negative); a
        pair the verifier does not know counts as false (nothing to check against: keep)."""
        known = [(p, t) for p, t in items if p in self.verifier]
        new = list(dict.fromkeys(t for _, t in known if t not in self._graphs))
        if new:
            self._graphs.update(zip(new, self.parse(new), strict=True))
        out = []
        for pair_id, text in items:
            if pair_id not in self.verifier:
                out.append(False)
                continue
            graph = self._graphs[text]
            out.append(isinstance(graph, Exception) or bool(self.verifier.holds(pair_id, graph)))
        return out

    def keep_false(
        self,
        pair_id: str,
        candidates: Sequence[T],
        k: int,
        *,
        text: Callable[[T], str] = str,
        group: Callable[[T], Hashable] | None = None,
        batch: int = 8,
    ) -> list[T]:
        """The first ``k`` candidates, in order, that are false of the pair's image (all count
        as false when the verifier does not know the pair), at most one per ``group`` (e.g. one
        caption per neighbouring image). Candidates are checked lazily, ``batch`` at a time, so
        a long list costs only what is needed to fill ``k``."""

        def false_ones() -> Iterator[T]:
            for start in range(0, len(candidates), batch):
                chunk = list(candidates[start : start + batch])
                flags = self.true_of([(pair_id, text(c)) for c in chunk])
                yield from (c for c, true in zip(chunk, flags, strict=True) if not true)

        return first_per_group(false_ones(), k, group)
