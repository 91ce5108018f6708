"""Rule-based scene-graph parser over a spaCy dependency parse.

``SceneGraphParser().parse("two red squares left of a blue circle")`` returns a
:class:`~unimo_kit.data.scene_graph.SceneGraph` whose FACTUAL form is
``( squares , is , 2 ) , ( squares , is , red ) , ( circle , is , blue ) ,
( squares , left of , circle )``.

What the rules cover (a few linear passes over the parse, no per-token model calls; the full
list with examples is in docs/parser.md):

- **objects**: noun heads with the compounds FACTUAL's gold graphs keep as one name (the
  table of :mod:`~unimo_kit.rewrite.parse_compounds`: ``stop sign``, also where spaCy split
  it), else those WordNet lists as one noun (``tennis court``) or whose head is a kind of the
  modifier (``refrigerator freezer``), and proper names (``Wii Fit``); other noun modifiers,
  colours and materials become attributes (``metal poles`` → ``( poles , is , metal )``,
  ``high rise building`` → ``( building , is , high rise )``; ``keep_compounds=True`` keeps
  them all); ``a couple of`` counts 2; plurals keep their form
  (``squares``) and numerals become counts (``two`` → attribute ``2``, ``Entity.count = 2``);
  collective nouns give way to their ``of`` object (``a bunch of kites`` → ``kites``);
  ``there is/are``; relative pronouns stand for their noun; ``each other`` for the subject;
  personal pronouns for the nearest preceding object (dropped when there is none).
- **attributes**: adjectival modifiers with their conjuncts and intensifiers (``dark green``,
  ``heart-shaped``), predicative adjectives (``the sky is blue and cloudy``), numerals,
  relative clauses (``a circle that is red``), actions without an object (``two women
  skiing``), colours worn without a garment (``boy wearing yellow``, ``girl in pink``).
- **relations**: verb + object (``ride``), verb + preposition (``sit on``), prepositions on
  nouns, multi-word prepositions (``in front of``, ``next to``, ``on top of``, ``left of``),
  passives (``held by`` → subject and object swapped), copula + preposition, relative clauses
  (also with object gaps and stranded prepositions), possessives and ``of`` (``eye of a
  giraffe`` → ``( giraffe , have , eye )``; containers: ``a glass of wine`` → ``( wine , in ,
  glass )``), clothing (``man in a red shirt`` → ``( man , wear , shirt )``); conjunctions
  expand to each conjunct on both sides.
- a few systematic mis-parses of spaCy's small model on caption fragments.

Spans (``[start, end)`` character offsets into the caption the graph was parsed from):

- ``Entity.span`` covers the object name: the head noun and the compound words kept in the name,
  so ``caption[start:end].lower()`` equals ``Entity.name`` up to whitespace runs. For an object
  reached through a pronoun it is the span of the antecedent noun.
- ``Attribute.span`` covers the attribute words (``dark green``, ``heart-shaped``); for a count it
  covers the numeral (``two``), whose text differs from the digit in ``Attribute.text``.
- ``Relation.span`` covers the words the predicate was read from, first to last: ``sitting on``
  for ``sit on``, ``to the left of`` for ``left of``, ``held by`` for a passive ``hold``, ``of``
  or ``'s`` for ``have``, and the preposition for ``wear`` read from ``in``.

Captions longer than :data:`MAX_CHARS` characters are truncated before parsing (spans stay
valid for the original string).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph
from unimo_kit.rewrite.parse_compounds import compound_key
from unimo_kit.rewrite.parse_lexicon import (
    ADVERB_PREPOSITIONS,
    ATTRIBUTE_ALIASES,
    CANONICAL_RELATIONS,
    COLLECTIVE_NOUNS,
    COLORS,
    INTENSIFIERS,
    NAME_MODIFIERS,
    PART_NOUNS,
    PERSONAL_PRONOUNS,
    PREDICATE_ALIASES,
    RELATIONAL_NOUNS,
    RELATIVE_PRONOUNS,
    SKIPPED_MODIFIERS,
    STATE_ADVERBS,
    STRANDED_PREPOSITIONS,
    VERB_ALIASES,
    WEAR_PREPOSITIONS,
    container_preposition,
    has_verb_reading,
    is_clothing,
    is_hyphen_noun,
    is_material,
    keeps_compound,
    number_value,
    verb_lemma,
)

MAX_CHARS = 1000
"""Captions are cut to this many characters before parsing (longer ones are not captions)."""

NEEDED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer")
"""spaCy components the rules read (tags, dependencies, lemmas); all others are disabled."""

UNUSED_COMPONENTS = ("ner", "senter", "entity_ruler", "entity_linker", "textcat", "spancat")
"""Components of common English pipelines the rules never read (disabled at load time)."""

_NOUN_POS = frozenset({"NOUN", "PROPN"})
_NOMINAL_DEPS = frozenset({"nsubj", "nsubjpass", "dobj", "pobj", "attr", "conj", "appos", "ROOT",
                           "npadvmod", "oprd", "dative"})  # fmt: skip
_NOT_NOMINAL_POS = frozenset({"VERB", "AUX", "ADP", "DET", "PRON", "CCONJ", "SCONJ", "PUNCT",
                              "ADJ", "NUM", "PART", "SPACE", "SYM", "INTJ", "ADV"})  # fmt: skip
_CLAUSE_DEPS = frozenset({"prep", "dobj", "xcomp", "ccomp", "prt", "dative", "attr", "acomp",
                          "oprd", "agent", "nsubjpass", "advcl", "conj"})  # fmt: skip
_VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
_SUBJECT_DEPS = ("nsubj", "csubj")
_ADJ_DEPS = frozenset({"amod", "acomp", "nmod"})
_DETERMINERS = frozenset({"the", "a", "an", "its", "their", "his", "her", "this", "that"})


class SceneGraphParser:
    """Parse captions into scene graphs with spaCy and dependency rules.

    Args:
        nlp: a loaded ``spacy.language.Language``, a pipeline name or path, or ``None`` for the
            default English pipeline (:func:`unimo_kit.resources.spacy_pipeline`). Loaded lazily
            on first use.
        batch_size: texts per ``nlp.pipe`` batch in :meth:`parse_many`.
        n_process: spaCy worker processes in :meth:`parse_many` (1 = in process).
        canonical_relations: map spatial synonyms onto canonical predicates (``under`` →
            ``below``, ``beside`` → ``next to``; see
            :data:`~unimo_kit.rewrite.parse_lexicon.CANONICAL_RELATIONS`). Off by default, as
            FACTUAL keeps the surface word; the synthetic world's gold graphs use the canonical
            form.
        keep_compounds: keep every noun compound in the object name (``christmas ornament``)
            instead of only those WordNet lists as one noun (``tennis court``; the default,
            as FACTUAL annotates: ``storm clouds`` → ``( clouds , is , storm )``).

    The parser is picklable (the pipeline is dropped and reloaded by name in the copy), so it
    can travel to DataLoader workers.

    Example::

        parser = SceneGraphParser()
        graph = parser.parse("a man riding a horse")
        graph.to_factual()  # '( man , ride , horse )'
    """

    def __init__(
        self,
        nlp: Any = None,
        batch_size: int = 256,
        n_process: int = 1,
        canonical_relations: bool = False,
        keep_compounds: bool = False,
    ):
        self.keep_compounds = keep_compounds
        self.batch_size = batch_size
        self.n_process = n_process
        self.canonical_relations = canonical_relations
        # _reloadable: the pipeline can be loaded again by name, so pickles leave it out.
        if nlp is None or isinstance(nlp, str):
            self._name, self._nlp, self._reloadable = nlp, None, True
        else:
            import spacy

            meta = getattr(nlp, "meta", {}) or {}
            self._name = f"{meta.get('lang', 'en')}_{meta.get('name', '')}"
            self._reloadable = spacy.util.is_package(self._name)
            self._nlp = nlp

    # ------------------------------------------------------------------ pipeline

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline (loaded on first access, with unused components disabled)."""
        if self._nlp is None:
            from unimo_kit.resources import spacy_pipeline

            # One load, with the usual unused components off; any other unused component of
            # an unusual pipeline is switched off per call in parse_many.
            self._nlp = spacy_pipeline(self._name, disable=UNUSED_COMPONENTS)
        return self._nlp

    def _disabled(self) -> list[str]:
        return [p for p in self.nlp.pipe_names if p not in NEEDED_COMPONENTS]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._reloadable:
            state["_nlp"] = None
        return state

    # ------------------------------------------------------------------ API

    def parse(self, text: str) -> SceneGraph:
        """Parse one caption. Never raises on odd input (empty, non-English, control
        characters, lone surrogates such as the JSON escape ``\\ud800``, which spaCy is given
        as spaces — one character for one, so spans still point into the original); captions
        over :data:`MAX_CHARS` characters are truncated."""
        return next(self.parse_many([text]))

    def parse_each(self, texts: Sequence[str]) -> list[SceneGraph | Exception]:
        """Graphs for ``texts`` in one :meth:`parse_many` batch; if the batch fails, each text
        is parsed alone and the one that breaks gets its exception in its place, so the others
        are not lost."""
        try:
            return list(self.parse_many(texts))
        except Exception:
            out: list[SceneGraph | Exception] = []
            for text in texts:
                try:
                    out.append(self.parse(text))
                except Exception as exc:
                    out.append(exc)
            return out

    def parse_many(self, texts: Iterable[str]) -> Iterator[SceneGraph]:
        """Parse captions lazily in ``nlp.pipe`` batches, yielding graphs in input order."""
        nlp = self.nlp
        originals: deque[str] = deque()  # captions handed to spaCy, not yet yielded

        def clipped() -> Iterator[str]:
            for text in texts:
                text = text if isinstance(text, str) else str(text)
                originals.append(text)
                yield _LONE_SURROGATE.sub(" ", text[:MAX_CHARS])

        docs = nlp.pipe(
            clipped(),
            batch_size=self.batch_size,
            n_process=self.n_process,
            disable=self._disabled(),
        )
        for doc in docs:
            graph = graph_from_doc(
                doc,
                canonical_relations=self.canonical_relations,
                keep_compounds=self.keep_compounds,
            )
            graph.text = originals.popleft()
            yield graph

    def __repr__(self) -> str:
        return f"SceneGraphParser(nlp={self._name!r}, batch_size={self.batch_size})"


# ---------------------------------------------------------------------- rules


def graph_from_doc(
    doc: Any, canonical_relations: bool = False, keep_compounds: bool = False
) -> SceneGraph:
    """Build the scene graph of a parsed spaCy ``Doc`` (see the module docstring and
    :class:`SceneGraphParser` for the options)."""
    graph = _Builder(_merge_compounds(doc), keep_compounds).build()
    if canonical_relations:
        for relation in graph.relations:
            relation.predicate = CANONICAL_RELATIONS.get(relation.predicate, relation.predicate)
    return graph


class _Builder:
    """One pass of rules over a ``Doc``; entities are created per noun token on demand."""

    def __init__(self, doc: Any, keep_compounds: bool = False):
        self.doc = doc
        self.keep_compounds = keep_compounds
        self.graph = SceneGraph(text=doc.text)
        self.entity_of: dict[int, int] = {}  # token index -> entity index
        self.seen: set[tuple[int, str, int]] = set()
        self.name_tokens: set[int] = set()  # tokens inside some entity name
        self.resolving: set[int] = set()  # tokens whose resolve() is running (cycle guard)
        self._side_words()
        self._fragment_roots()
        self._subject_verb_object()
        self._fronted_objects()

    def _side_words(self) -> None:
        """Find ``left``/``right`` misread as the head noun of ``X right of Y``."""
        doc = self.doc
        # "a square right of a heart" parsed with "right" as the head noun and "square" as its
        # modifier: side token index -> the noun token that really heads the phrase.
        self.stand_in: dict[int, Any] = {}
        self.side_of: dict[int, Any] = {}  # side token index -> the noun it follows
        for token in doc:
            if token.lower_ in ("left", "right") and self.of_object(token) is not None:
                nouns = [
                    c
                    for c in token.lefts
                    if c.dep_ in ("amod", "compound", "nmod")
                    and (c.pos_ in _NOUN_POS or (c.pos_ == "ADJ" and c.i == token.i - 1))
                ]
                if nouns:
                    self.stand_in[token.i] = nouns[-1]
                elif (
                    token.i > 0
                    and doc[token.i - 1].pos_ in _NOUN_POS
                    and not any(c.dep_ in ("det", "amod", "poss") for c in token.lefts)
                ):
                    # "a heart right of a triangle" with "right" as an apposition of "heart"
                    self.side_of[token.i] = doc[token.i - 1]
        self.stand_for = {noun.i: side for side, noun in self.stand_in.items()}

    def _fragment_roots(self) -> None:
        """Find fragment roots with the wrong part of speech."""
        doc = self.doc
        # Fragments the tagger misreads (captions are mostly noun phrases):
        # "the side windows on the bus" with "windows" as a verb -> a noun;
        # "zebra grazing on grass" with "grazing" as a noun and "zebra" its compound -> a verb.
        self.noun_roots: set[int] = set()
        self.gerund_subject: dict[int, Any] = {}
        for root in (t for t in doc if t.dep_ == "ROOT"):
            children = list(root.children)
            if any(c.dep_ in ("nsubj", "nsubjpass", "expl", "aux", "auxpass") for c in children):
                continue
            if (
                (root.tag_ == "VBG" or (root.tag_ == "NN" and root.lower_.endswith("ing")))
                and root.i > 0
                and doc[root.i - 1].dep_ in ("compound", "npadvmod")
                and doc[root.i - 1].pos_ in _NOUN_POS
                and doc[root.i - 1].head.i == root.i
                and any(c.dep_ in ("prep", "dobj") for c in children)
            ):  # "a giraffe laying on the ground", "zebra grazing on grass"
                self.gerund_subject[root.i] = doc[root.i - 1]
            elif root.tag_ in _VERB_TAGS and (
                any(c.dep_ in ("det", "poss", "nummod", "compound") for c in root.lefts)
                or not has_verb_reading(root.lower_)
            ):
                self.noun_roots.add(root.i)
        self.gerund_of = {noun.i: verb for verb, noun in self.gerund_subject.items()}

    def _subject_verb_object(self) -> None:
        """Find ``N V-ing N`` read as modifiers of the last noun."""
        doc = self.doc
        # "lady holding baby" read as ((lady holding) baby): subject, verb, object.
        self.svo: dict[int, tuple[Any, Any]] = {}
        for token in doc:
            if token.tag_ == "VBG" and token.dep_ == "amod" and token.head.pos_ in _NOUN_POS:
                subject = [c for c in token.lefts if c.dep_ == "npadvmod" and c.pos_ in _NOUN_POS]
                if subject and token.head.i > token.i:
                    self.svo[token.i] = (subject[-1], token.head)
        self.svo_subjects = {s.i for s, _ in self.svo.values()}

    def _fronted_objects(self) -> None:
        """Find objects fronted before their subject (``ground giraffes are standing on``)."""
        doc = self.doc
        # "ground giraffes are standing on": the fronted object parsed as the subject's compound.
        self.topic_of: dict[int, Any] = {}
        for verb in doc:
            if verb.tag_ not in _VERB_TAGS or not any(
                c.dep_ == "prt"
                and c.lower_ in STRANDED_PREPOSITIONS
                and all(t.is_punct for t in doc[c.i + 1 :])  # the caption's last word
                for c in verb.children
            ):
                continue
            subject = next((c for c in verb.children if c.dep_ == "nsubj"), None)
            if subject is None or subject.i == 0 or any(c.dep_ == "dobj" for c in verb.children):
                continue
            first = doc[subject.i - 1]
            if first.dep_ == "compound" and first.head.i == subject.i and first.pos_ in _NOUN_POS:
                self.topic_of[verb.i] = first
        self.topics = {t.i for t in self.topic_of.values()}

    # -------------------------------------------------------------- entities

    def build(self) -> SceneGraph:
        doc = self.doc
        for token in doc:
            if self.is_object(token):
                self.entity(token)
        for token in doc:
            dep = token.dep_
            if dep == "prep":
                self.preposition(token)
            elif dep == "poss" and token.pos_ in _NOUN_POS:
                self.possessive(token)
            elif token.lower_ in (*PART_NOUNS, "couple") and token.i not in self.entity_of:
                self.resolve(token)
            if self.is_verb(token):
                self.verb(token)
            elif token.lemma_ == "be":
                self.predicative(token)
            if token.lower_ in COLORS and token.pos_ == "ADJ":
                self.worn_color(token)
        return self.graph

    def worn_color(self, color: Any) -> None:
        """``boy wearing yellow``, ``man dressed in red``, ``girl in pink``: the colour (and
        its conjuncts) is an attribute of the person."""
        head = color.head
        if color.dep_ == "dobj" and head.lemma_ == "wear":
            wearers = self.subjects(head)
        elif color.dep_ in ("pobj", "amod") and head.lower_ == "in" and head.dep_ == "prep":
            governor = head.head
            if governor.i in self.entity_of:
                wearers = self.targets(governor, before=head.i)
            elif governor.lemma_ in ("dress", "clothe"):
                passive = [c for c in governor.children if c.dep_ == "nsubjpass"]
                wearers = (
                    [e for c in passive for e in self.targets(c)]
                    if passive
                    else self.subjects(governor)
                )
            else:
                return
        else:
            return
        for index in wearers:
            attributes = self.graph.entities[index].attributes
            for word in (color, *color.conjuncts):
                if word.lower_ in COLORS and all(a.text != word.lower_ for a in attributes):
                    attributes.append(Attribute(word.lower_, _span(word), "color"))

    def is_object(self, token: Any) -> bool:
        """A noun head that names an object (not a compound part, not a relational noun)."""
        pos = token.pos_
        dep = token.dep_
        if (
            token.i in self.stand_for
            or token.i in self.noun_roots
            or token.i in self.gerund_of
            or token.i in self.topics
        ):
            return True
        if token.i in self.gerund_subject:
            return False
        if token.i in self.stand_in or token.i in self.side_of:
            return False
        if dep == "pobj" and (
            _in_color(token.head) or (token.lower_ == "top" and self.of_object(token) is None)
        ):
            return False  # "white in color", "a truck with a plant on top"
        if token.lower_ in ("other", "another") and any(
            c.lower_ in ("each", "one") for c in token.lefts
        ):
            return False  # "each other" stands for the subject
        if dep in ("compound", "amod", "nummod", "det", "advmod", "acomp", "prt", "aux"):
            return False
        nominal = dep in _NOMINAL_DEPS and pos not in _NOT_NOMINAL_POS
        if pos in _NOUN_POS or (nominal and token.tag_ not in _VERB_TAGS):
            pass
        elif (
            dep in ("nsubj", "nsubjpass", "dobj", "pobj")
            and token.tag_ == "VBZ"
            and not any(c.dep_ in ("nsubj", "dobj", "aux") for c in token.children)
        ):
            pass  # "leaves on the tree are green" with "leaves" tagged as a verb
        elif (
            dep in ("pobj", "dobj", "nsubj", "nsubjpass", "attr")
            and pos == "ADJ"
            and any(c.dep_ == "det" for c in token.lefts)
        ):
            pass  # "of the small pink square" with "square" tagged as an adjective
        elif (
            dep == "ROOT"
            and pos in ("ADV", "ADJ", "X")
            and any(c.dep_ in ("compound", "amod", "det", "nummod") for c in token.lefts)
        ):
            pass  # a mis-tagged fragment head ("christmas ornament" tagged RB)
        else:
            return False
        if not token.text[:1].isalnum():
            return False
        if (
            dep == "npadvmod"
            and token.head.pos_ in ("ADJ", "VERB")
            and token.i not in self.svo_subjects
            and token.i not in self.gerund_of
        ):
            return False  # "heart" in "heart-shaped"
        lower = token.lower_
        if self.of_object(token) is not None and (lower in COLLECTIVE_NOUNS or lower in PART_NOUNS):
            return False
        return not (lower in RELATIONAL_NOUNS and self.is_relational(token))

    def is_relational(self, token: Any) -> bool:
        """``front`` in ``in front of``: a pobj of a preposition with its own ``of`` object."""
        return token.dep_ == "pobj" and self.of_object(token) is not None

    @staticmethod
    def of_object(token: Any) -> Any:
        """The ``pobj`` of the token's ``of`` preposition child, if any."""
        for child in token.children:
            if child.dep_ == "prep" and child.lower_ == "of":
                for grandchild in child.children:
                    if grandchild.dep_ == "pobj":
                        return grandchild
        return None

    def entity(self, token: Any) -> int:
        """Entity index of a noun token (created with its name, span and attributes)."""
        index = self.entity_of.get(token.i)
        if index is not None:
            return index
        doc = self.doc
        start = token.i
        attributes: list[Attribute] = []
        count: int | None = None
        # Compounds and positional adjectives directly left of the head join the name.
        j = token.i - 1
        while j >= 0:
            left = doc[j]
            if left.i in self.topics:
                break
            if left.tag_ == "HYPH" and j - 1 >= 0 and doc[j - 1].dep_ == "compound":
                j -= 1
                continue
            if left.dep_ == "compound" and left.head.i >= j and left.pos_ in _NOUN_POS | {"X"}:
                start = j
                j -= 1
                continue
            if left.dep_ == "amod" and left.head.i == token.i and left.lower_ in NAME_MODIFIERS:
                start = j
                j -= 1
                continue
            if (
                left.dep_ == "amod"
                and left.pos_ == "ADJ"
                and start == j + 1
                and start < token.i
                and is_hyphen_noun(left.lower_, doc[start].lower_)
            ):  # "high rise building": "high-rise" is one noun
                start = j
                j -= 1
                continue
            break
        chain = range(start, token.i)  # compound words, in the name or made attributes
        if start < token.i:
            start = self.split_compound(start, token, attributes)
        for k in range(start, token.i + 1):
            self.name_tokens.add(k)
        begin = doc[start].idx
        end = token.idx + len(token.text)
        name = " ".join(doc.text[begin:end].lower().split())
        modifiers = [c for k in range(start, token.i + 1) for c in doc[k].children]
        side = self.stand_for.get(token.i)
        if side is not None:
            modifiers += [c for c in doc[side].lefts if c.i < token.i and c.dep_ != "compound"]
        for child in modifiers:
            if child.i in self.svo:
                continue
            dep = child.dep_
            if dep == "nummod" or (dep in ("amod", "quantmod") and child.pos_ == "NUM"):
                value = number_value(child.text)
                if value is not None:
                    count = value
                    attributes.append(Attribute(str(value), _span(child), "count"))
            elif child.i in chain:
                continue
            elif (dep in _ADJ_DEPS and child.i not in self.name_tokens and child.i < token.i) or (
                dep == "compound" and child.pos_ == "ADJ" and child.i < start
            ):
                self.adjective(child, attributes)
        self.graph.entities.append(Entity(name, attributes, (begin, end), count))
        index = len(self.graph.entities) - 1
        self.entity_of[token.i] = index
        return index

    def split_compound(self, start: int, token: Any, attributes: list[Attribute]) -> int:
        """Decide which compound words stay in the object name; the others become attributes.

        With ``keep_compounds`` every noun compound stays (``christmas ornament``) except
        colours and materials (``metal poles`` → ``( poles , is , metal )``). Otherwise, as
        FACTUAL annotates, only the longest tail WordNet lists as one noun stays (``tennis
        court``, ``hot dog``) and the words before it are attributes (``storm clouds`` →
        ``( clouds , is , storm )``). Words glued by hyphens count as one (``t-shirt``).
        Positional words (``left hand``) always stay. Returns the new start of the name.
        """
        doc = self.doc
        units: list[list[Any]] = [[doc[start]]]
        for k in range(start + 1, token.i + 1):
            if doc[k - 1].whitespace_:
                units.append([doc[k]])
            else:
                units[-1].append(doc[k])
        units = _join_hyphen_nouns(units)
        text = doc.text
        words = tuple(
            " ".join(text[unit[0].idx : unit[-1].idx + len(unit[-1].text)].lower().split())
            for unit in units
        )
        keep = len(units) - 1  # index of the first unit kept in the name
        if self.keep_compounds:
            keep = 0
            while keep < len(units) - 1 and (words[keep] in COLORS or is_material(words[keep])):
                keep += 1
        else:
            for first in range(len(units) - 1):
                if keeps_compound(words[first:]):
                    keep = first
                    break
        # A proper name stays whole in the object name ("Wii Fit", "Coca Cola sign").
        names = [k for k, unit in enumerate(units) if _proper_name(unit)]
        if names and not self.keep_compounds:
            keep = min(keep, names[0])
        while keep > 0 and words[keep - 1] in NAME_MODIFIERS:
            keep -= 1
        for unit, word in zip(units[:keep], words[:keep], strict=True):
            if word in NAME_MODIFIERS or not word[:1].isalnum():
                continue
            kind = "color" if word in COLORS else "material" if is_material(word) else "noun"
            word = ATTRIBUTE_ALIASES.get(word, word)
            span = (unit[0].idx, unit[-1].idx + len(unit[-1].text))
            attributes.append(Attribute(word, span, kind))
        return units[keep][0].i

    def adjective(self, token: Any, attributes: list[Attribute]) -> None:
        """Add an adjective and its conjuncts (``black and brown``) as attributes."""
        for adj in (token, *token.conjuncts):
            if adj.pos_ in _NOUN_POS and adj.dep_ != "compound" and adj is not token:
                continue
            lower = adj.lower_
            if lower in SKIPPED_MODIFIERS or (lower in NAME_MODIFIERS and adj is token):
                continue
            if not lower[:1].isalnum():
                continue
            start = adj.i
            for child in reversed(list(adj.lefts)):
                glued = not child.whitespace_  # "heart-shaped"
                keep = (child.dep_ in ("npadvmod", "punct", "compound") and glued) or (
                    child.dep_ in ("advmod", "amod", "npadvmod") and child.lower_ in INTENSIFIERS
                )
                if keep and child.i == start - 1:
                    start = child.i
                elif child.dep_ == "amod" or (
                    child.dep_ == "npadvmod" and (child.pos_ == "ADJ" or child.lower_ in COLORS)
                ):  # "small yellow" parsed as small -> yellow
                    self.adjective(child, attributes)
            # "dark green": an intensifier tagged as a sibling modifier of the same noun.
            if start == adj.i and adj.i > 0:
                before = self.doc[adj.i - 1]
                if before.lower_ in INTENSIFIERS and before.head.i in (adj.i, adj.head.i):
                    start = before.i
            begin = self.doc[start].idx
            end = adj.idx + len(adj.text)
            text = " ".join(self.doc.text[begin:end].lower().split())
            if any(a.text == text for a in attributes):
                continue
            attributes[:] = [a for a in attributes if a.text not in text.split()]
            attributes.append(Attribute(text, (begin, end), "other"))

    def targets(self, token: Any, before: int | None = None) -> list[int]:
        """Entities a token stands for, with noun conjuncts expanded (``trees and bushes``).

        Args:
            token: the noun (or pronoun, collective noun...).
            before: keep only conjuncts left of this token index: a modifier attached to the
                first conjunct that stands between the conjuncts modifies that one alone
                (``a man holding a cup and a dog``).
        """
        out: list[int] = []
        for item in (token, *token.conjuncts):
            if item is not token and (
                item.pos_ in ("VERB", "AUX", "ADJ", "ADP")
                or (before is not None and item.i > before)
            ):
                continue
            out.extend(self.resolve(item))
        return list(dict.fromkeys(out))

    def resolve(self, token: Any) -> list[int]:
        """Entities for one token: itself, its ``of`` object, or a pronoun's referent. A token
        met again while it is being resolved stands for nothing (``LET by IT``: the pronoun's
        referent excludes the verb's subjects, which are the pronoun)."""
        if token.i in self.resolving:
            return []
        self.resolving.add(token.i)
        try:
            return self._resolve(token)
        finally:
            self.resolving.discard(token.i)

    def _resolve(self, token: Any) -> list[int]:
        if token.i in self.entity_of:
            return [self.entity_of[token.i]]
        if token.i in self.stand_in:
            return self.targets(self.stand_in[token.i])
        lower = token.lower_
        if lower in COLLECTIVE_NOUNS or lower in PART_NOUNS:
            inner = self.of_object(token)
            if inner is not None:
                found = self.targets(inner)
                if lower == "couple":  # "a couple of children" -> ( children , is , 2 )
                    for index in found:
                        entity = self.graph.entities[index]
                        if entity.count is None:
                            entity.count = 2
                            entity.attributes.append(Attribute("2", _span(token), "count"))
                if lower in PART_NOUNS:  # "part of a door" -> ( door , is , part )
                    for index in found:
                        attributes = self.graph.entities[index].attributes
                        if all(a.text != lower for a in attributes):
                            attributes.append(Attribute(lower, _span(token), "noun"))
                return found
        if lower in RELATIVE_PRONOUNS or token.tag_ in ("WDT", "WP"):
            clause = token.head  # "a star which is ...", "sand on which a girl walks"
            for _ in range(4):
                if clause.dep_ in ("relcl", "acl") and clause.head.i != clause.i:
                    return self.targets(clause.head)
                if clause.head.i == clause.i:
                    break
                clause = clause.head
            return []
        if lower in ("other", "another") and any(c.lower_ in ("each", "one") for c in token.lefts):
            return self.subjects(self.clause_verb(token))
        if lower in PERSONAL_PRONOUNS and token.pos_ in ("PRON", "DET"):
            # Not the noun the pronoun's phrase modifies, nor the subject of its verb
            # ("items taped to it" -> not the items).
            excluded: set[int] = set()
            if token.dep_ == "pobj":
                governor = token.head.head
                if governor.i in self.entity_of:
                    excluded.add(self.entity_of[governor.i])
                elif self.is_verb(governor) and governor.i != token.i:
                    excluded.update(self.subjects(governor))
            for j in range(token.i - 1, -1, -1):
                index = self.entity_of.get(j)
                if index is not None and index not in excluded:
                    return [index]
            return []
        return []

    def clause_verb(self, token: Any) -> Any:
        """The nearest verb above ``token`` (or the root)."""
        head = token.head
        while head.i != head.head.i and not self.is_verb(head) and head.lemma_ != "be":
            head = head.head
        return head

    # -------------------------------------------------------------- subjects

    def subjects(self, verb: Any) -> list[int]:
        """Entities doing ``verb``: its subject, the noun a participle or relative clause
        modifies, the agent of a passive, or the subject of the verb it is chained to."""
        for _ in range(8):
            if verb is None:
                return []
            if verb.i in self.gerund_subject:
                return self.targets(self.gerund_subject[verb.i])
            if verb.i in self.svo:
                return self.targets(self.svo[verb.i][0])
            if verb.i in self.stand_in:  # "a square right of a heart" headed by "right"
                return self.targets(self.stand_in[verb.i])
            children = list(verb.children)
            for child in children:
                if child.dep_ == "agent":
                    return [e for p in child.children if p.dep_ == "pobj" for e in self.targets(p)]
            for child in children:
                if child.dep_ in _SUBJECT_DEPS or child.dep_ == "nsubjpass":
                    return self.targets(child)
            for child in children:
                if child.dep_ == "expl":
                    attrs = [c for c in children if c.dep_ in ("attr", "dobj")]
                    return [e for a in attrs for e in self.targets(a)]
            dep = verb.dep_
            head = verb.head
            if head.i == verb.i:
                return []
            if dep in ("acl", "relcl", "amod", "appos") or head.i in self.entity_of:
                return self.targets(head, before=verb.i)
            if dep in ("conj", "xcomp", "advcl", "ccomp", "acomp", "pcomp", "prep", "dep"):
                verb = head
                continue
            return []
        return []

    # -------------------------------------------------------------- relations

    def add_relation(self, subjects: list[int], predicate: str, objects: list[int], span) -> None:
        predicate = " ".join(predicate.split())
        if not predicate:
            return
        for s in subjects:
            for o in objects:
                key = (s, predicate, o)
                if key in self.seen or (s == o and predicate == "have"):
                    continue
                self.seen.add(key)
                self.graph.relations.append(Relation(s, predicate, o, span))

    def is_verb(self, token: Any) -> bool:
        """A content verb (not a copula or auxiliary)."""
        if token.i in self.gerund_subject or token.i in self.svo:
            return True
        if token.pos_ == "VERB" or (token.tag_ in _VERB_TAGS and token.pos_ not in ("AUX", "ADJ")):
            return token.dep_ not in ("aux", "auxpass", "amod") and token.i not in self.entity_of
        return token.pos_ == "AUX" and token.lemma_ == "have" and token.dep_ not in ("aux",)

    def verb_predicate(self, verb: Any) -> tuple[str, int]:
        """Lemma plus particles (``pick up``) and where the predicate words end."""
        words = [_lemma(verb)]
        end = verb.idx + len(verb.text)
        for child in verb.rights:
            if child.dep_ == "prt":
                words.append(child.lower_)
                end = child.idx + len(child.text)
        return " ".join(words), end

    def verb(self, verb: Any) -> None:
        """``man riding horse`` → (man, ride, horse); ``ball held by boy`` → (boy, hold, ball);
        adjectival predicates of a copula are handled here too."""
        if verb.lemma_ == "be":
            return
        objects = [c for c in verb.children if c.dep_ in ("dobj", "dative")]
        if verb.i in self.svo:
            objects = [self.svo[verb.i][1]]
        passive_subjects = [c for c in verb.children if c.dep_ == "nsubjpass"]
        agent = any(c.dep_ == "agent" for c in verb.children)
        predicate, end = self.verb_predicate(verb)
        span = (verb.idx, end)
        stranded = verb.dep_ == "relcl" and any(
            c.dep_ == "prt" and c.lower_ in STRANDED_PREPOSITIONS for c in verb.children
        )
        if verb.i in self.topic_of and not objects:
            self.add_relation(
                self.subjects(verb), predicate, self.targets(self.topic_of[verb.i]), span
            )
            return
        if stranded and not objects and not passive_subjects:
            # "the water the bird is standing on" -> (bird, stand on, water)
            subjects = [e for c in verb.children if c.dep_ == "nsubj" for e in self.targets(c)]
            self.add_relation(subjects, predicate, self.targets(verb.head), span)
        if objects:
            subjects = self.subjects(verb)
            for obj in objects:
                self.add_relation(subjects, predicate, self.targets(obj), span)
        elif agent:
            subjects = self.subjects(verb)
            if passive_subjects:
                patients = [e for p in passive_subjects for e in self.targets(p)]
            elif verb.dep_ in ("acl", "relcl"):
                patients = self.targets(verb.head)
            else:
                patients = []
            by = next(c for c in verb.children if c.dep_ == "agent")
            self.add_relation(subjects, predicate, patients, (verb.idx, by.idx + len(by.text)))
        elif (
            verb.dep_ == "relcl"
            and not stranded
            and any(c.dep_ == "nsubj" and c.lower_ not in RELATIVE_PRONOUNS for c in verb.children)
            and not any(c.dep_ in _CLAUSE_DEPS for c in verb.children)
        ):
            # "the rope the man is holding" -> (man, hold, rope)
            subjects = [e for c in verb.children if c.dep_ == "nsubj" for e in self.targets(c)]
            self.add_relation(subjects, predicate, self.targets(verb.head), span)
        elif (
            not stranded
            and verb.tag_ == "VBG"
            and verb.dep_ in ("ROOT", "acl", "relcl")
            and not any(
                c.dep_ in _CLAUSE_DEPS or any(g.dep_ == "prep" for g in c.children)
                for c in verb.children
            )
        ):
            # "two women skiing", "people walking outside": an action without an object is
            # an attribute of its subject, in the caption's (-ing) form
            subjects = self.subjects(verb)
            states = [verb] + [
                c for c in verb.children if c.dep_ == "advmod" and c.lower_ in STATE_ADVERBS
            ]
            for index in subjects:
                attributes = self.graph.entities[index].attributes
                for word in states:
                    if all(a.text != word.lower_ for a in attributes):
                        attributes.append(Attribute(word.lower_, _span(word), "state"))

    def predicative(self, copula: Any) -> None:
        """``the sky is blue and cloudy`` / ``a circle that is red`` → attributes of the
        copula's subjects."""
        adjectives = [
            c
            for c in copula.children
            if c.dep_ in ("acomp", "attr")
            and c.pos_ in ("ADJ", "NUM")
            and not any(g.dep_ == "prep" and not _in_color(g) for g in c.children)
        ]
        if not adjectives:
            return
        subjects = self.subjects(copula)
        for adj in adjectives:
            for index in subjects:
                entity = self.graph.entities[index]
                value = number_value(adj.text) if adj.pos_ == "NUM" else None
                if value is not None:
                    entity.count = value
                    entity.attributes.append(Attribute(str(value), _span(adj), "count"))
                else:
                    self.adjective(adj, entity.attributes)

    def preposition(self, prep: Any) -> None:
        """A preposition (or a ``next to`` style pair) and its object make a relation."""
        doc = self.doc
        governor = prep.head
        words = [prep]
        # "next to", "left of", "out of": the preposition hangs off an adverb-like head word.
        anchor = None
        if governor.i in self.side_of and governor.i == prep.i - 1:
            words = [governor, prep]
            governor = self.side_of[governor.i]
        elif (
            prep.lower_ in ADVERB_PREPOSITIONS.get(governor.lower_, ())
            and governor.i == prep.i - 1
            and governor.i not in self.entity_of
        ):
            if governor.dep_ == "pobj":  # "to left of": the adverb parsed as a noun
                words = [governor.head, governor, prep]
                governor = governor.head.head
            else:
                words = [governor, prep]
                anchor = governor
                governor = governor.head
        elif governor.dep_ == "prep" and governor.i == prep.i - 1:
            # "in between", "out of": two prepositions in a row, the first without its own object.
            if any(c.dep_ == "pobj" for c in governor.children):
                pass
            else:
                words = [governor, prep]
                governor = governor.head
        objects = [c for c in prep.children if c.dep_ == "pobj"]
        if not objects or _in_color(prep):
            return
        obj = objects[0]
        # "in front of", "on the side of": relational noun + "of".
        if obj.lower_ in RELATIONAL_NOUNS and obj.i not in self.entity_of:
            inner_prep = next(
                (c for c in obj.children if c.dep_ == "prep" and c.lower_ == "of"), None
            )
            inner = self.of_object(obj)
            if inner_prep is not None and inner is not None:
                words = [*words, *[t for t in doc[prep.i + 1 : inner_prep.i + 1]]]
                obj = inner
        if prep.lower_ == "of" and prep.head.i in self.entity_of and len(words) == 1:
            self.of_phrase(prep, obj)
            return
        if (
            prep.dep_ == "prep"
            and prep.head.dep_ == "pobj"
            and prep.head.i not in self.entity_of
            and prep.head.lower_ in RELATIONAL_NOUNS
        ):
            return  # the "of" inside "in front of", handled with its first word
        if prep.lower_ == "of" and len(words) == 1 and governor.i not in self.entity_of:
            return
        bare_top = obj.lower_ == "top" and self.of_object(obj) is None
        if (obj.lower_ in PERSONAL_PRONOUNS or bare_top) and prep.lower_ != "with":
            # "a bowl with flowers in it" -> (flowers, in, bowl);
            # "a truck with a plant on top" -> (plant, on top of, truck)
            pair = self.with_pair(governor)
            if pair is not None:
                text = " ".join(w.lower_ for w in words if w.lower_ not in _DETERMINERS)
                text = f"{text} top of" if bare_top else text
                last = obj if bare_top else words[-1]
                span = (words[0].idx, last.idx + len(last.text))
                self.add_relation(self.targets(pair[0]), text, self.targets(pair[1]), span)
                return
            if bare_top:
                return
        objects_ = self.targets(obj)
        if not objects_:
            return
        text = " ".join(w.lower_ for w in words if w.lower_ not in _DETERMINERS)
        text = PREDICATE_ALIASES.get(text, text)
        begin = words[0].idx
        end = words[-1].idx + len(words[-1].text)
        if anchor is not None and anchor.i == governor.i:
            # "the heart is left of the triangle" with "left" parsed as the (passive) root
            self.add_relation(self.subjects(anchor), text, objects_, (begin, end))
            return
        self.attach(governor, text, objects_, begin, end, prep)

    def with_pair(self, token: Any) -> tuple[Any, Any] | None:
        """``(held, holder)`` for ``holder with held``, where ``token`` is either noun."""
        if token.i in self.entity_of:
            for child in token.children:
                if child.dep_ == "prep" and child.lower_ == "with":
                    held = [c for c in child.children if c.dep_ == "pobj"]
                    if held:
                        return held[0], token
        if token.dep_ == "pobj" and token.head.lower_ == "with":
            holder = token.head.head
            if holder.i in self.entity_of:
                return token, holder
        return None

    def attach(self, governor: Any, text: str, objects: list[int], begin: int, end: int, prep):
        """Relate the governor of a prepositional phrase to its object(s)."""
        if governor.i in self.entity_of or governor.lower_ in COLLECTIVE_NOUNS:
            subjects = self.targets(governor, before=prep.i)
            if text in WEAR_PREPOSITIONS and all(
                is_clothing(self.graph.entities[o].name) for o in objects
            ):
                text = "wear"
            self.add_relation(subjects, text, objects, (begin, end))
            return
        if governor.lemma_ == "be" or governor.pos_ == "AUX":
            self.add_relation(self.subjects(governor), text, objects, (begin, end))
            return
        if self.is_verb(governor):
            direct = [c for c in governor.children if c.dep_ == "dobj"]
            passive = any(c.dep_ == "nsubjpass" for c in governor.children)
            if direct:
                subjects = [e for d in direct for e in self.targets(d)]
                self.add_relation(subjects, text, objects, (begin, end))
                return
            predicate, _ = self.verb_predicate(governor)
            subjects = (
                [e for c in governor.children if c.dep_ == "nsubjpass" for e in self.targets(c)]
                if passive
                else self.subjects(governor)
            )
            if governor.lemma_ in ("wear", "dress") and text == "in":
                text = ""
            self.add_relation(
                subjects, f"{predicate} {text}", objects, (min(governor.idx, begin), end)
            )
            return
        if governor.pos_ in ("ADJ", "ADV") and governor.dep_ in ("acomp", "amod", "advmod"):
            subjects = self.subjects(governor.head) if governor.dep_ == "acomp" else []
            if governor.dep_ in ("amod", "advmod") and governor.head.i in self.entity_of:
                subjects = self.targets(governor.head)
            self.add_relation(subjects, text, objects, (begin, end))
        # Anything else (a preposition heading a fragment, an interjection...) gives nothing.

    def of_phrase(self, prep: Any, obj: Any) -> None:
        """``eye of a giraffe`` → (giraffe, have, eye); ``a plate of food`` → (food, on,
        plate)."""
        owner = self.entity_of[prep.head.i]
        container = container_preposition(self.graph.entities[owner].name)
        for o in self.targets(obj):
            if container:  # "a glass of wine" -> (wine, in, glass)
                self.add_relation([o], container, [owner], _span(prep))
            else:
                self.add_relation([o], "have", [owner], _span(prep))

    def possessive(self, token: Any) -> None:
        """``the man's hat`` → (man, have, hat)."""
        owned = token.head
        if owned.i not in self.entity_of or token.i not in self.entity_of:
            return
        case = next((c for c in token.children if c.dep_ == "case"), token)
        self.add_relation(self.targets(token), "have", self.targets(owned), _span(case))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Code points spaCy cannot encode; a Python ``str`` holds them as single characters."""


_MERGE_VOTES = 5
"""Keep votes a compound needs in the table before a mis-parse of it is repaired."""


def _merge_compounds(doc: Any) -> Any:
    """Repair compounds the gold-derived table attests that spaCy split apart (``stop sign
    on a pole`` with ``stop`` as the root verb, ``a yellow fire hydrant`` with ``hydrant`` an
    adverb): the two words become one noun token, in a copy of ``doc``."""
    from unimo_kit.rewrite.parse_compounds import shipped_table

    table = shipped_table()
    pairs = []
    for first, second in itertools.pairwise(doc):
        if (
            (first.dep_ == "compound" and first.head.i == second.i)
            or not first.whitespace_
            or not (first.is_alpha and second.is_alpha)
            or (pairs and pairs[-1][1] == first.i)
            or second.pos_ in ("ADP", "DET", "CCONJ", "AUX", "PRON")
            or (first.head.i != second.i and second.head.i != first.i)
        ):
            continue
        keep, split = table.get(compound_key((first.lower_, second.lower_)), (0, 0))
        if keep >= _MERGE_VOTES and keep > split:
            pairs.append((first.i, second.i))
    if not pairs:
        return doc
    doc = doc.copy()
    with doc.retokenize() as retokenizer:
        for a, b in pairs:
            tail = doc[b]
            tag = "NNS" if tail.tag_ == "NNS" or tail.lower_.endswith("s") else "NN"
            lemma = f"{doc[a].lower_} {tail.lemma_.lower()}"
            retokenizer.merge(doc[a : b + 1], attrs={"POS": "NOUN", "TAG": tag, "LEMMA": lemma})
    return doc


def _join_hyphen_nouns(units: list[list[Any]]) -> list[list[Any]]:
    """Merge two written words that WordNet lists hyphenated as one noun (``high rise`` for
    ``high-rise``) into one unit of a compound."""
    out: list[list[Any]] = []
    for unit in units:
        if (
            out
            and len(out[-1]) == 1
            and len(unit) == 1
            and is_hyphen_noun(out[-1][0].lower_, unit[0].lower_)
        ):
            out[-1] = [*out[-1], *unit]
        else:
            out.append(unit)
    return out


def _proper_name(unit: Sequence[Any]) -> bool:
    """A capitalised proper noun (``Wii``), not just the capitalised first word of a caption."""
    if not all(t.pos_ == "PROPN" and t.text[:1].isupper() for t in unit):
        return False
    first = unit[0]
    return first.i > 0 or (len(first.doc) > 1 and first.doc[1].text[:1].isupper())


def _in_color(prep: Any) -> bool:
    """``in color`` (``the sky is white in color``): no relation, the adjective stays."""
    return prep.lower_ == "in" and any(
        c.dep_ == "pobj" and c.lower_ in ("color", "colour") for c in prep.children
    )


def _span(token: Any) -> tuple[int, int]:
    return token.idx, token.idx + len(token.text)


def _lemma(token: Any) -> str:
    lemma = token.lemma_.lower()
    lemma = verb_lemma(token.lower_, lemma if lemma.isalpha() else "")
    return VERB_ALIASES.get(lemma, lemma)
