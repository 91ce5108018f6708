"""Typed hard negatives: edit one node of a caption's scene graph, in the caption's own words.

For a caption and its parsed :class:`~unimo_kit.data.scene_graph.SceneGraph` (with character
spans), :class:`Rewriter` makes SugarCrepe-typed negatives:

=============  ===========================================================================
``replace-obj``  an object noun → another noun attested in the same context and named with
                 the caption's other objects (number kept)
``replace-att``  an attribute → a contrasting one attested with the noun (colour → colour,
                 small → large, open → closed)
``replace-rel``  a predicate → one of the same category that contradicts it, seen between
                 its two ends (``sitting on`` → ``standing on``, never ``swinging`` → ``holding``)
``swap-obj``     two parallel objects (same kind and role) exchange places, or the two ends
                 of a relation when the reversed relation is attested (or directed, between
                 two people or two animals)
``swap-att``     two objects exchange attributes (across categories, multi-word, colours
                 between made things) or counts (number agreement kept)
``add-obj``      a new object of the anchor's kind is conjoined to any noun phrase
``add-att``      an attribute of a category the object lacks, attested with the noun
``count``        a numeral changes (noun number and copula agree)
=============  ===========================================================================

"Attested" means seen in the evidence: the vocabulary of the corpus being rewritten merged with
a reference table (``reference=``; the stage ships one built from real captions, see
:mod:`unimo_kit.rewrite.reference`). A replacement that nothing attests is not made: a
negative must be false and still describe a sensible scene, or a text-only model can tell it
from the caption (Hsieh et al. 2023, SugarCrepe).

Each negative is ``{"type", "text", "edits": [{"start", "end", "old", "new"}]}`` with spans into
the original caption. Replacements related to the original by WordNet (same word up to number,
synonym, hypernym, hyponym) are rejected, articles and copulas are made to agree, and every
choice is drawn from a generator seeded by ``derive_seed(seed, key, type)``: the output for a
caption depends only on the caption, its graph, the vocabulary, the key and the seed — not on
input order, sharding or which other types are asked for.

The package, one job a module: :mod:`.registry` (the types and :class:`Negative`),
:mod:`.rewriter` (:class:`Rewriter`: the draw loop and the evidence every type reads),
:mod:`.context` (:class:`RewriteContext`), :mod:`.selection` (which candidates are kept),
the makers by what they change (:mod:`.objects`, :mod:`.attributes`, :mod:`.relations`,
:mod:`.counts`), what they read off a caption (:mod:`.caption`), word classes
(:mod:`.words`) and the evidence thresholds (:mod:`.thresholds`).
"""

from unimo_kit.rewrite.negatives import attributes, counts, objects, relations
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.registry import (
    NEGATIVE_TYPES,
    GraphCheck,
    Made,
    Maker,
    Negative,
    NegativeType,
    check_negative_types,
    negative_type,
    negative_types,
    register_negative_type,
    unregister_negative_type,
)
from unimo_kit.rewrite.negatives.rewriter import Rewriter
from unimo_kit.rewrite.negatives.selection import CandidateFilter, select
from unimo_kit.rewrite.negatives.thresholds import (
    ADDED_CATEGORIES,
    COMMON_SHARE,
    FALLBACK_CATEGORIES,
    MAX_ADDITION_LIFT,
    MAX_SCENE_LIFT,
    MIN_ATTRIBUTE_SHARE,
    MIN_CANDIDATE_COUNT,
    MIN_COOCCURRENCE,
    MIN_RELATION_EVIDENCE,
    STATED_SHARE,
    TYPICAL_REVERSAL,
    USUAL_EVIDENCE,
    USUAL_SHARE,
)

__all__ = [
    "ADDED_CATEGORIES",
    "COMMON_SHARE",
    "FALLBACK_CATEGORIES",
    "MAX_ADDITION_LIFT",
    "MAX_SCENE_LIFT",
    "MIN_ATTRIBUTE_SHARE",
    "MIN_CANDIDATE_COUNT",
    "MIN_COOCCURRENCE",
    "MIN_RELATION_EVIDENCE",
    "NEGATIVE_TYPES",
    "STATED_SHARE",
    "TYPICAL_REVERSAL",
    "USUAL_EVIDENCE",
    "USUAL_SHARE",
    "CandidateFilter",
    "GraphCheck",
    "Made",
    "Maker",
    "Negative",
    "NegativeType",
    "RewriteContext",
    "Rewriter",
    "check_negative_types",
    "negative_type",
    "negative_types",
    "register_negative_type",
    "select",
    "unregister_negative_type",
]

# The built-in types, registered the way a new one is (docs/extending.md): output order.
for _spec in (
    NegativeType("replace-obj", objects.replace_obj, "replace", "an object → another noun"),
    NegativeType("replace-att", attributes.replace_att, "replace", "an attribute → a contrast"),
    NegativeType("replace-rel", relations.replace_rel, "replace", "a predicate → another attested"),
    NegativeType("swap-obj", objects.swap_obj, "swap", "two objects exchange places"),
    NegativeType("swap-att", attributes.swap_att, "swap", "two objects exchange attributes"),
    NegativeType("add-obj", objects.add_obj, "add", "a new object conjoined to a noun phrase"),
    NegativeType("add-att", attributes.add_att, "add", "an attribute the object lacks"),
    NegativeType("count", counts.change_count, "other", "a numeral changes"),
):
    register_negative_type(_spec)
del _spec
