"""How much evidence a replacement needs: the counts, shares and lifts the makers test against."""

from __future__ import annotations

MIN_CANDIDATE_COUNT = 3  # objects seen fewer times are drawn as no replacement or addition
MIN_RELATION_EVIDENCE = 2  # a replacement relation is seen this often between the two nouns
MIN_COOCCURRENCE = 2  # a replacement object is named this often with each other object
MAX_ADDITION_LIFT = 10.0  # an added object seen with its anchor over 10x chance goes with it
MAX_SCENE_LIFT = 5.0  # ... or with another object of the caption over 5x: the scene shows it
ADDED_CATEGORIES = ("color", "material", "shape")  # what add-att adds: checkable in an image
FALLBACK_CATEGORIES = ("size", "age")  # added only where none of the above can be (often true)
MIN_ATTRIBUTE_SHARE = 0.03  # an added size, a swapped attribute: at least this share on its noun
USUAL_SHARE = 0.5  # a size more common than this on its noun is its usual one: says little
COMMON_SHARE = 0.2  # an added attribute holding more often than this on its noun may well be true
TYPICAL_REVERSAL = 3.0  # a reversed relation seen this many times as often is what images show
STATED_SHARE = 0.25  # a size or an age is added only to nouns given one this often
USUAL_EVIDENCE = 10  # values of a category on a noun needed to tell its usual ones
