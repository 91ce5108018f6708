"""Scene graphs: the structure shared by the synthetic world (gold graphs), the parser in
:mod:`unimo_kit.rewrite` and the parser evaluation.

A graph has entities (a head noun with attributes) and relations between entities. Nodes may
carry character spans into the caption they came from, so rewrites can edit the original
string exactly. The FACTUAL string form (Li et al., 2023) is the exchange format::

    ( circle , is , red ) , ( circle , left of , square ) , ( star )

``( x , is , a )`` is an attribute, ``( s , p , o )`` a relation, ``( x )`` a lone object.
Counts are attributes with a numeral value (``( squares , is , 2 )``), as in FACTUAL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COMPOSITIONAL_CATEGORIES: tuple[str, ...] = (
    "replace-obj",
    "replace-att",
    "replace-rel",
    "swap-obj",
    "swap-att",
    "add-obj",
    "add-att",
)
"""SugarCrepe's kinds of minimal caption edits, in output order. The one vocabulary shared by
the rewriter's hard-negative types, the synthetic compositional test set and its evaluation."""

Span = tuple[int, int]
"""``[start, end)`` character offsets into the caption."""


@dataclass
class Attribute:
    """An attribute of an entity (``red``, ``small``, or a count such as ``2``)."""

    text: str  # normalised form written to FACTUAL strings, e.g. "red", "2"
    span: Span | None = None  # where it stands in the caption, if known
    kind: str = ""  # optional category: "color", "size", "count", "other"...


@dataclass
class Entity:
    """An object node: a head noun (with compounds) and its attributes."""

    name: str  # as written in FACTUAL strings, e.g. "circle", "squares", "christmas ornament"
    attributes: list[Attribute] = field(default_factory=list)
    span: Span | None = None  # span of the noun phrase head in the caption
    count: int | None = None  # number of instances when stated ("two squares" -> 2)


@dataclass
class Relation:
    """A directed relation ``subject --predicate--> object`` between entity indices."""

    subject: int  # index into SceneGraph.entities
    predicate: str  # lemmatised predicate, e.g. "left of", "sit on", "next to"
    object: int  # index into SceneGraph.entities
    span: Span | None = None  # span of the predicate words in the caption


@dataclass
class SceneGraph:
    """Entities and relations of one caption (``text``)."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    text: str = ""  # the caption the graph was parsed from (empty for graphs read from strings)

    def add_entity(self, name: str, attributes: list[str] | None = None) -> int:
        """Append an entity and return its index."""
        self.entities.append(Entity(name, [Attribute(a) for a in attributes or []]))
        return len(self.entities) - 1

    def triples(self) -> list[tuple[str, ...]]:
        """The graph as FACTUAL tuples, in order: attributes and relations, then lone objects
        (entities that appear in no other tuple)."""
        out: list[tuple[str, ...]] = []
        used: set[int] = set()
        for index, entity in enumerate(self.entities):
            for attribute in entity.attributes:
                out.append((entity.name, "is", attribute.text))
                used.add(index)
        for relation in self.relations:
            subject = self.entities[relation.subject].name
            obj = self.entities[relation.object].name
            out.append((subject, relation.predicate, obj))
            used.update((relation.subject, relation.object))
        out.extend((e.name,) for i, e in enumerate(self.entities) if i not in used)
        return out

    def to_factual(self) -> str:
        """FACTUAL string form, e.g. ``( circle , is , red ) , ( star )``."""
        return " , ".join("( " + " , ".join(t) + " )" for t in self.triples())

    @classmethod
    def from_factual(cls, text: str) -> SceneGraph:
        """Parse a FACTUAL string. Entities are identified by name (as FACTUAL does)."""
        graph = cls()
        index: dict[str, int] = {}

        def entity(name: str) -> int:
            if name not in index:
                index[name] = graph.add_entity(name)
            return index[name]

        for parts in parse_factual_tuples(text):
            if len(parts) == 1:
                entity(parts[0])
            elif len(parts) == 3 and parts[1] == "is":
                graph.entities[entity(parts[0])].attributes.append(Attribute(parts[2]))
            elif len(parts) == 3:
                graph.relations.append(Relation(entity(parts[0]), parts[1], entity(parts[2])))
            else:
                raise ValueError(f"not a FACTUAL tuple: {parts!r} in {text!r}")
        return graph


_TUPLE = re.compile(r"\(([^()]*)\)")


def parse_factual_tuples(text: str) -> list[tuple[str, ...]]:
    """Split a FACTUAL string into tuples of stripped, lower-cased words.

    >>> parse_factual_tuples("( girl , on , bed ) , ( girl , is , young ) , ( wall )")
    [('girl', 'on', 'bed'), ('girl', 'is', 'young'), ('wall',)]
    """
    tuples = []
    for match in _TUPLE.finditer(text):
        parts = tuple(p.strip().lower() for p in match.group(1).split(","))
        if any(parts):
            tuples.append(parts)
    return tuples
