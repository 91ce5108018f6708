"""Word classes the makers test words against: people, living things, garments, substances,
body parts, names and identity nouns; verbs that take agents, hold, or read as passives;
locative and directed predicates; colour words."""

from __future__ import annotations

import functools

from unimo_kit.rewrite.vocab import (
    BASE_COLORS,
    INVERSE,
    SYMMETRIC,
    attribute_category,
    lemma,
    morphy,
    noun_classes,
    part_related,
    relation_category,
)

# ----------------------------- people, living things and other nouns

MASCULINE = frozenset({"man", "boy", "guy", "gentleman", "father", "dad", "son", "husband",
                       "king", "prince", "brother", "uncle", "grandfather", "groom", "male",
                       "policeman", "fireman", "businessman", "fisherman", "cowboy"})  # fmt: skip


FEMININE = frozenset({"woman", "girl", "lady", "mother", "mom", "daughter", "wife", "queen",
                      "princess", "sister", "aunt", "grandmother", "bride", "female",
                      "policewoman", "businesswoman", "cowgirl"})  # fmt: skip


PRONOUNS = {"his": MASCULINE, "him": MASCULINE, "he": MASCULINE, "himself": MASCULINE,
             "her": FEMININE, "hers": FEMININE, "she": FEMININE, "herself": FEMININE}  # fmt: skip


IDENTITY_NOUNS = MASCULINE | FEMININE | frozenset({
    "child", "kid", "baby", "toddler", "adult", "teenager", "teen", "person", "people",
    "youth", "infant", "children", "kids", "men", "women",
})  # fmt: skip
"""Person nouns that say who one is (sex, age), not what one does: one of them and a role
noun (``player``, ``skier``, ``tourist``) can name the same person."""


def role_for_identity(old: str, new: str) -> bool:
    """Whether ``new`` for ``old`` swaps a role noun and an identity noun of a person (``girl``
    → ``player``, ``skier`` → ``woman``): both may hold of the one person, so no negative."""
    a, b = lemma(old), lemma(new)
    if not (is_person(a) and is_person(b)):
        return False
    return (a in IDENTITY_NOUNS) != (b in IDENTITY_NOUNS)


PERSON_GROUPS = frozenset({"people", "crowd", "couple", "family", "team", "audience", "crew"})
"""Nouns for several persons (WordNet files ``people`` under its top level)."""


LIVING_CLASSES = frozenset({"noun.person", "noun.animal"})


def is_person(noun: str) -> bool:
    """A person or a group of persons, by the first WordNet sense (a sheep is no person)."""
    w = " ".join(noun.lower().split())
    if w in PERSON_GROUPS or lemma(w) in PERSON_GROUPS:
        return True
    return first_class(w) == "noun.person" or first_class(lemma(w)) == "noun.person"


def is_living(noun: str) -> bool:
    """A person, a group of persons or an animal (``herd``, ``flock`` included)."""
    w = lemma(noun)
    return is_person(w) or first_class(w) in LIVING_CLASSES or w in ("herd", "flock")


SINGLE_SEATS = frozenset({
    "chair", "seat", "stool", "skateboard", "bicycle", "bike", "horse", "saddle", "toilet",
    "surfboard", "snowboard", "scooter", "motorcycle", "motorbike", "pony", "armchair",
    "rolling chair", "office chair",
})  # fmt: skip
"""Things that hold one occupant: a second one beside it is no sensible scene."""

CONTENT_PHRASES = ("made of", "full of", "covered in", "covered with", "filled with")
"""Relations of a thing to its stuff: a second thing made of the same stuff is mostly true."""


def single_seat(noun: str) -> bool:
    """Whether ``noun`` holds one occupant (a chair, a skateboard, a horse)."""
    w = " ".join(noun.lower().split())
    return w in SINGLE_SEATS or lemma(w) in SINGLE_SEATS or lemma(head_word(w)) in SINGLE_SEATS


def living_kind(noun: str) -> str:
    """``person``, ``animal`` or ``thing``: a conjunct beside a living anchor is of its kind."""
    if is_person(noun):
        return "person"
    return "animal" if is_living(noun) else "thing"


@functools.lru_cache(maxsize=65536)
def first_class(noun: str) -> str:
    """The lexicographer file of ``noun``'s first WordNet sense (``sheep``: an animal, though
    one of its senses is a person), ``""`` when unknown."""
    classes = noun_classes(noun)
    if len(classes) <= 1:
        return next(iter(classes), "")
    from unimo_kit.rewrite.vocab import _wordnet

    synsets = _wordnet().synsets(lemma(noun).replace(" ", "_"), "n")
    return str(synsets[0].lexname()) if synsets else ""


MASS_NOUNS = frozenset({
    "food", "water", "grass", "snow", "sand", "dirt", "ground", "hair", "furniture", "luggage",
    "clothing", "equipment", "traffic", "rice", "meat", "broccoli", "lettuce", "cheese",
    "sauce", "milk", "coffee", "juice", "wine", "beer", "ice", "smoke", "fog", "rain", "mud",
    "gravel", "paint", "foliage", "scenery", "machinery", "garbage", "trash", "graffiti",
    "cereal", "soup", "butter", "bread", "fur", "wool", "grease", "soil", "hay", "straw",
    "seaweed", "moss", "ivy", "sky", "pavement", "asphalt", "concrete", "wood", "glass",
    "metal", "plastic", "paper", "cloth", "fabric", "cream", "frosting", "icing", "spinach",
    "celery", "pasta", "spaghetti", "salad", "fruit", "produce", "jewelry", "clothes",
    "artwork", "writing", "lettering", "text", "light", "sunlight", "shade", "shadow",
})  # fmt: skip
"""Nouns that take no ``a``/``an`` or numeral in captions (``a food``)."""


def is_substance(noun: str) -> bool:
    """A mass noun that is no food or plant (``paint``, ``sand``, ``water``): what replaces it
    must be a substance too, or the scene breaks (``yellow paint`` → ``yellow banana``)."""
    w = lemma(noun)
    return (w in MASS_NOUNS or first_class(w) == "noun.substance") and first_class(w) not in (
        "noun.food",
        "noun.plant",
    )


WORN_EXTRA = frozenset({"wetsuit", "wet suit", "t shirt", "tshirt", "t-shirt", "hoodie",
                        "tank top", "outfit", "gear"})  # fmt: skip
"""Things worn that WordNet lacks or files elsewhere."""


WORN = ("clothing.n.01", "accessory.n.01", "footwear.n.02", "spectacles.n.01")
"""WordNet synsets under which a noun is something worn."""


@functools.lru_cache(maxsize=65536)
def is_clothing(noun: str) -> bool:
    """Whether one of the first two WordNet senses of ``noun`` is something worn (``shirt``,
    ``hat``, ``shoes``, ``glasses``, ``helmet``)."""
    from unimo_kit.rewrite.vocab import _wordnet

    if lemma(noun) in WORN_EXTRA:
        return True
    wn = _wordnet()
    worn = {wn.synset(name) for name in WORN}
    for word in dict.fromkeys((noun.lower(), lemma(noun))):  # "glasses" is not a "glass"
        for synset in wn.synsets(word.replace(" ", "_"), "n")[:2]:
            if synset in worn or worn & set(synset.closure(lambda s: s.hypernyms())):
                return True
    return False


@functools.lru_cache(maxsize=65536)
def is_body_part(noun: str) -> bool:
    """Whether ``noun`` names a part of a body: WordNet files it under ``noun.body`` (``hand``)
    or, for animals' parts filed under ``noun.animal`` (``tail``, ``mane``, ``paw``), its
    first sense is a kind of ``body_part.n.01``."""
    w = head_word(noun)
    if "noun.body" in noun_classes(w):
        return True
    from unimo_kit.rewrite.vocab import _wordnet

    wn = _wordnet()
    synsets = wn.synsets(w.replace(" ", "_"), "n")
    body = wn.synset("body_part.n.01")
    return bool(synsets) and body in synsets[0].closure(lambda s: s.hypernyms())


def head_word(noun: str) -> str:
    """The last word of a noun (``baby stroller`` → ``stroller``): its kind is the head's."""
    words = lemma(noun).split()
    return words[-1] if words else ""


def body_mismatch(new: str, anchor: str) -> bool:
    """A body part beside what is not one (``a man and a hand``, ``the bird and the head``):
    WordNet files ``hand`` under people too, so a shared kind does not keep it out; and a
    person beside an animal (``a woman and a sheep``: ``sheep`` is also a person in WordNet)
    unless both are first senses of one kind."""
    if ("noun.body" in noun_classes(new)) != ("noun.body" in noun_classes(anchor)):
        return True
    first_new, first_anchor = first_class(new), first_class(anchor)
    living = {"noun.person", "noun.animal"}
    return first_new != first_anchor and bool({first_new, first_anchor} & living)


@functools.lru_cache(maxsize=65536)
def whole_object(noun: str) -> bool:
    """Whether ``noun`` names a countable whole object that can be added to a scene: not a
    body part (``hand``, ``hair``), not a substance or mass (``water``, ``snow``,
    :data:`MASS_NOUNS`), and not, in its first WordNet sense, a part of something else
    (``window`` of a building, ``door``, ``wheel``, ``collar``: a part added beside a
    whole is mostly a part of what is already there)."""
    word = lemma(noun)
    if word in MASS_NOUNS or first_class(word) in ("noun.body", "noun.substance"):
        return False
    from unimo_kit.rewrite.vocab import _wordnet

    synsets = _wordnet().synsets(word.replace(" ", "_"), "n")
    return not (synsets and synsets[0].part_holonyms())


NATURAL_CLASSES = frozenset({"noun.animal", "noun.person", "noun.plant", "noun.food",
                              "noun.body", "noun.object", "noun.substance",
                              "noun.phenomenon"})  # fmt: skip
"""First WordNet senses of things whose colour nature fixes (a horse, grass, the sky, hair)."""


@functools.lru_cache(maxsize=65536)
def made_thing(noun: str) -> bool:
    """Whether ``noun`` names a made thing, which comes in any colour: clothing, or a noun
    with an artefact or a written sign among its WordNet senses (``table``, ``sign``,
    ``letters``, ``jersey``) whose first sense is not a living or natural thing (``hood`` is
    first a gangster, ``horse`` an animal, ``grass`` a plant)."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = lemma(noun)
    if is_clothing(w):
        return True
    if first_class(w) in NATURAL_CLASSES:
        return False
    made = {"noun.artifact", "noun.communication"}
    return bool(made & noun_classes(w)) or any(
        s.lexname() in made for s in _wordnet().synsets(w.replace(" ", "_"), "n")
    )


@functools.lru_cache(maxsize=65536)
def proper_name(word: str) -> bool:
    """Whether a one-word head reads as a name: unknown to WordNet as a noun, or known only
    as instances (``nathan``, ``mary``); such a head is never replaced by a common noun."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = word.lower()
    if " " in w or not w.isalpha() or len(w) < 3:
        return False
    base = morphy(w, "n")
    if base is None:
        return not any(morphy(w, pos) for pos in ("v", "a", "r"))
    synsets = _wordnet().synsets(base, "n")
    return bool(synsets) and all(s.instance_hypernyms() for s in synsets)


SCENE_WORDS = frozenset({"background", "foreground", "distance", "picture", "photo", "image",
                         "scene", "view", "side", "front", "top", "bottom", "middle", "corner",
                         "edge", "area", "part", "piece", "section", "rest"})  # fmt: skip
"""Nouns that name a place in the picture, not a thing: never drawn as a replacement object."""


def same_thing(new: str, old: str) -> bool:
    """Whether ``new`` names what ``old`` names: one is the head of the other (``t shirt`` →
    ``shirt``, ``tennis player`` → ``player``), the same word written apart or together
    (``night stand`` → ``nightstand``, ``t-shirt``), or a part of it (``tire`` → ``wheel``)."""
    a, b = lemma(new), lemma(old)
    if a.split(" ")[-1] == b.split(" ")[-1]:
        return True
    if a.replace(" ", "").replace("-", "") == b.replace(" ", "").replace("-", ""):
        return True
    return part_related(a, b)


def not_an_object(noun: str) -> bool:
    """Parser leftovers that make poor object nouns: colour, size and number words."""
    return noun in ("color", "colour") or attribute_category(noun) in ("color", "size", "count")


# ---------------------------------------------- verbs and predicates

AGENT_VERBS = frozenset({"hold", "carry", "wear", "look", "watch", "eat", "drink", "drive",
                          "ride", "play", "throw", "catch", "read", "use", "talk", "pet", "walk",
                          "kick", "push", "pull", "grab", "swing", "stare", "surf",
                          "ski"})  # fmt: skip
"""Verbs whose subject is a person or an animal: not drawn for a thing's relation."""


NOT_VERBS = frozenset({"close", "full", "part", "top", "front", "side", "back", "end", "edge",
                        "made", "out", "far", "ahead", "next", "hand", "finger"})  # fmt: skip
"""First words of predicates that WordNet also lists as verbs but that are not verbs there."""


HELD_VERBS = frozenset({"wear", "hold", "carry"})
"""Relations whose subject can stand in them to two things at once (``men in socks and
ties``, ``holding a bat and a ball``): add-obj conjoins to the object of no other relation,
since one thing is mostly in one place, driven or hung from one thing."""


LIGHT_VERBS = frozenset({"have", "be", "contain", "show", "include", "get", "make", "do"})
"""Verbs that say little about a scene (``the bus has intersection``): never drawn."""


PASSIVE_VERBS = frozenset(
    {
        "mount", "attach", "park", "cover", "surround", "fill", "pile", "stack", "display",
        "print", "paint", "write", "connect", "fasten", "place", "position", "situate",
        "locate", "decorate", "tie", "glue", "nail", "bolt", "wrap", "post", "frame", "line",
        "pin", "tape", "chain", "lock", "plug", "reflect", "dress", "fence", "stuff", "top",
    }
)  # fmt: skip
"""Verbs captions use as passive participles (``mounted on``, ``parked by``, ``covered
with``): the parser gives their lemma, which as a replacement would be inflected like an
active verb (``mounting on``)."""


DIRECTED_VERBS = frozenset({"watch", "look", "stare", "chase", "follow", "face", "approach",
                             "lead"})  # fmt: skip
"""Verbs whose two ends play different parts whoever they are (``a dog chasing a cat``): a
relation between two people or two animals with one of them can be turned round."""


MUTUAL_VERBS = frozenset({"talk", "chat", "kiss", "hug", "meet", "fight", "dance", "play",
                           "shake", "wrestle", "greet", "touch", "join"})  # fmt: skip
"""Verbs that two people mostly do to each other (``talking to``): turned round, the
caption says nearly the same."""


def is_active_verb_form(surface: str, predicate: str) -> bool:
    """Whether ``surface`` starts with an active form of the predicate's verb: a gerund, the
    base or the third person (``riding``, ``rides``), not a participle used as an adjective
    (``attached to``), whose replacement would turn the relation around."""
    if not is_verb_form(surface, predicate):
        return False
    from unimo_kit.rewrite.grammar import gerund, third_person

    word = surface.split(" ", 1)[0].lower()
    verb = predicate.split(" ", 1)[0].lower()
    return word in (verb, gerund(verb), third_person(verb)) or word.endswith("ing")


def is_verb_form(surface: str, predicate: str) -> bool:
    """Whether the first word of ``surface`` is a form of the predicate's verb."""
    from unimo_kit.rewrite.grammar import gerund, past_participle, third_person

    word = surface.split(" ", 1)[0].lower() if surface.strip() else ""
    verb = predicate.split(" ", 1)[0].lower()
    forms = {verb, gerund(verb), third_person(verb), past_participle(verb)}
    if verb.endswith("e"):
        forms.add(verb + "d")
    return word in forms or (len(verb) > 3 and word[: len(verb) - 1] == verb[:-1])


def finite_singular(word: str) -> bool:
    """Whether ``word`` looks like a third-person singular verb (``rides``, ``sits``), which a
    coordinated subject would make disagree. Copulas are fixed instead, so they are not."""
    w = word.lower().strip(".,;:!?")
    if w in ("is", "was", "has"):
        return False
    if not (w.endswith("s") and len(w) > 3) or w.endswith("ss"):
        return False
    from unimo_kit.rewrite.vocab import _is_verb

    base = w[:-2] if w.endswith("es") and _is_verb(w[:-2]) else w[:-1]
    return _is_verb(base)


def is_symmetric(predicate: str) -> bool:
    """Whether ``predicate`` holds both ways: a :data:`SYMMETRIC` preposition, alone or after
    a verb (``next to``, ``standing next to``, ``sitting beside``)."""
    words = predicate.lower().split()
    return any(" ".join(words[k:]) in SYMMETRIC for k in range(len(words)))


def is_directed(predicate: str) -> bool:
    """Whether ``A predicate B`` and ``B predicate A`` say different things about two
    people or animals: a directed spatial relation (:data:`INVERSE`: ``behind``, ``above``),
    alone or after a verb (``standing behind``), or a verb of :data:`DIRECTED_VERBS`."""
    words = predicate.lower().split()
    if not words:
        return False
    if words[0] in DIRECTED_VERBS:
        return True
    return any(" ".join(words[k:]) in INVERSE for k in range(len(words)))


def is_locative(predicate: str) -> bool:
    """Whether a predicate places its subject at its object: a spatial preposition, alone or
    after a verb (``on``, ``in front of``, ``skiing on``, ``sitting in``)."""
    words = predicate.lower().split()
    return any(relation_category(" ".join(words[k:])) == "spatial" for k in range(len(words)))


CARRIED_ON = frozenset({"on", "ride", "carry", "hold", "sit on", "stand on", "on top of",
                         "in", "inside", "lie on", "lay on", "ride on", "sit in"})  # fmt: skip
"""Relations where one end carries or holds the other (``two people on a horse``): swapping
counts across them gives odd scenes (``a person on two horses``)."""


PREPOSITIONS = frozenset({"in", "on", "at", "by", "with", "under", "over", "above", "below",
                           "behind", "between", "inside", "near", "beside", "from", "into",
                           "onto", "through", "across", "along", "around", "against", "atop",
                           "beneath", "underneath", "toward", "towards", "within",
                           "without"})  # fmt: skip


# ----------------------------------------------------------- colours


@functools.lru_cache(maxsize=65536)
def colour_word(word: str) -> bool:
    """A colour by its category or by any WordNet noun sense (``olive``, ``navy``: a fruit
    and a fleet first, so not in the ``color`` category)."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = word.lower()
    if attribute_category(w) == "color":
        return True
    if " " in w or not w.isalpha():
        return False
    wn = _wordnet()
    colour = wn.synset("color.n.01")
    return any(colour in s.closure(lambda x: x.hypernyms()) for s in wn.synsets(w, "n"))


COLOUR_MODIFIERS = frozenset({"dark", "light", "bright", "pale", "deep", "pastel", "neon"})
"""Words that shade a colour (``dark blue``): a multi-word attribute made of them and colours
is a colour."""


def swap_category(text: str) -> str:
    """:func:`attribute_category`, with multi-word colours (``dark blue``, ``black and
    white``, ``light brown``) read as colours, so that swap-att moves them as one attribute."""
    category = attribute_category(text)
    if category != "other":
        return category
    words = [w for w in text.lower().replace("-", " ").split() if w not in ("and", "&")]
    heads = [w for w in words if w not in COLOUR_MODIFIERS]
    if len(words) >= 2 and heads and all(attribute_category(w) == "color" for w in heads):
        return "color"
    return category


def plain_colour(text: str) -> bool:
    """Whether a colour attribute is made of plain colour words (:data:`BASE_COLORS`, maybe
    shaded: ``dark blue``), not a colour of hair or skin (``blonde``, ``auburn``)."""
    words = [w for w in text.lower().replace("-", " ").split() if w not in ("and", "&")]
    heads = [w for w in words if w not in COLOUR_MODIFIERS]
    return bool(heads) and all(w in BASE_COLORS for w in heads)
