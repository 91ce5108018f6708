"""The swap forms real captions need (issue 20), on hand-built graphs (no spaCy): colours
moved between made things, multi-word colours, counts with agreement (across a relation only
between living things), directed relations between two people or two animals turned round
where the reversal is attested, coordinated objects — and the refusals that keep nonsense
out (plants and animals keep their colours, hair colours, things carried, places, symmetric
relations, possessors and body parts)."""

from __future__ import annotations

from rewrite_graphs import evidence as _evidence
from rewrite_graphs import graph_of
from rewrite_graphs import negative_texts as _texts

from unimo_kit.rewrite.negatives import Rewriter

COLOURS = ("blue", "black", "green", "brown")  # 4 colours x 3 = 12 colour sightings per noun


def _coloured(*nouns: str, extra: tuple[str, ...] = ()) -> list[str]:
    """FACTUAL graphs that colour each noun with :data:`COLOURS` (a noun captions colour)."""
    return [f"( {n} , is , {c} )" for n in nouns for c in COLOURS] + list(extra)


def _swap_att(vocab, caption, graph) -> set[str]:
    return _texts(Rewriter(vocab, types=["swap-att"], per_type=2), caption, graph)


def _swap_obj(vocab, caption, graph) -> set[str]:
    return _texts(Rewriter(vocab, types=["swap-obj"], per_type=2), caption, graph)


# ---------------------------------------------------------------------- swap-att


def test_plain_colours_move_between_made_things_that_captions_colour():
    """Neither "white shirt" nor "red pants" is in the evidence; both nouns come in many
    colours, so the swap is a sensible scene."""
    caption = "a red shirt and white pants"
    graph = graph_of(caption, [("shirt", ["red"]), ("pants", ["white"])])
    vocab = _evidence(*_coloured("shirt", "pants"))
    assert _swap_att(vocab, caption, graph) == {"a white shirt and red pants"}


def test_a_thing_seldom_coloured_gets_no_new_colour():
    caption = "a red shirt and white pants"
    graph = graph_of(caption, [("shirt", ["red"]), ("pants", ["white"])])
    vocab = _evidence(*_coloured("shirt"), "( pants , is , black )")  # pants: one colour seen
    assert _swap_att(vocab, caption, graph) == set()


def test_plants_and_animals_keep_the_strict_rule():
    """Leaves and flowers are coloured often, but a colour of them must be seen on them."""
    caption = "green leaves and white flowers"
    graph = graph_of(caption, [("leaves", ["green"]), ("flowers", ["white"])])
    vocab = _evidence(*_coloured("leaf", "flower"))
    assert _swap_att(vocab, caption, graph) == set()
    caption = "a brown dog and a white box"
    graph = graph_of(caption, [("dog", ["brown"]), ("box", ["white"])])
    vocab = _evidence(*_coloured("dog", "box"))
    assert _swap_att(vocab, caption, graph) == set()


def test_hair_colours_are_no_plain_colours():
    """ "blonde" is a colour of hair: never moved onto a made thing (``a blonde box``)."""
    caption = "a blonde doll next to a red box"
    graph = graph_of(
        caption, [("doll", ["blonde"]), ("box", ["red"])], [(0, "next to", 1, "next to")]
    )
    vocab = _evidence(*_coloured("doll", "box"))
    assert _swap_att(vocab, caption, graph) == set()


def test_multi_word_colours_move_as_one_attribute():
    caption = "light blue door on a gray building"
    graph = graph_of(
        caption, [("door", ["light blue"]), ("building", ["gray"])], [(0, "on", 1, "on")]
    )
    vocab = _evidence(*_coloured("door", "building"))
    assert _swap_att(vocab, caption, graph) == {"gray door on a light blue building"}


def test_materials_move_between_made_things_seen_with_them_once():
    caption = "a wooden table and a metal chair"
    graph = graph_of(caption, [("table", ["wooden"]), ("chair", ["metal"])])
    once = Rewriter(
        _evidence("( table , is , wooden ) , ( chair , is , metal )"), types=["swap-att"]
    )
    once.vocab.noun_attributes["table"]["metal"] = 1
    once.vocab.noun_attributes["chair"]["wooden"] = 1
    assert _texts(once, caption, graph) == {"a metal table and a wooden chair"}
    unseen = _evidence("( table , is , wooden ) , ( chair , is , metal )")
    assert _swap_att(unseen, caption, graph) == set()


def test_counts_swap_between_coordinated_objects_with_agreement():
    caption = "two men and one woman sitting on bleachers"
    graph = graph_of(
        caption, [("men", []), ("woman", []), ("bleachers", [])],
        [(0, "sitting on", 2, "sit on"), (1, "sitting on", 2, "sit on")],
        counts={0: ("two", 2), 1: ("one", 1)},
    )  # fmt: skip
    vocab = _evidence("( man , sit on , bleachers )", "( woman , sit on , bleachers )")
    assert _swap_att(vocab, caption, graph) == {"a man and two women sitting on bleachers"}


def test_counts_swap_across_a_relation_between_two_living_things():
    caption = "two sheep standing next to a man"
    graph = graph_of(
        caption, [("sheep", []), ("man", [])], [(0, "standing next to", 1, "stand next to")],
        counts={0: ("two", 2)},
    )  # fmt: skip
    vocab = _evidence("( sheep , stand next to , man )")
    assert _swap_att(vocab, caption, graph) == {"a sheep standing next to two men"}


def test_counts_never_swap_across_what_carries_or_places():
    """ "a person on two horses", "a person walking in two parks" are odd scenes."""
    vocab = _evidence("( people , ride , horse )", "( people , walk in , park )")
    caption = "two people riding a horse"
    graph = graph_of(
        caption, [("people", []), ("horse", [])], [(0, "riding", 1, "ride")],
        counts={0: ("two", 2)},
    )  # fmt: skip
    assert _swap_att(vocab, caption, graph) == set()
    caption = "two people walking in a park"
    graph = graph_of(
        caption, [("people", []), ("park", [])], [(0, "walking in", 1, "walk in")],
        counts={0: ("two", 2)},
    )  # fmt: skip
    assert _swap_att(vocab, caption, graph) == set()


def test_counts_swap_only_between_parallel_objects():
    """The dogs and the road are neither coordinated nor in the same role."""
    caption = "two dogs by a car on a road"
    graph = graph_of(
        caption, [("dogs", []), ("car", []), ("road", [])],
        [(0, "by", 1, "by"), (1, "on", 2, "on")], counts={0: ("two", 2)},
    )  # fmt: skip
    vocab = _evidence("( dog , by , car ) , ( car , on , road )")
    assert _swap_att(vocab, caption, graph) == set()
    review = Rewriter(vocab).swap_review(caption, graph)
    assert ("swap-att", "count", "not parallel") in review
    assert ("swap-att", "count", "counts across one relation") in review


# ---------------------------------------------------------------------- swap-obj


def test_directed_relation_between_two_animals_turned_round_where_attested():
    """ "a cat chasing a dog": no such triple, but cats chase animals."""
    caption = "a dog chasing a cat"
    graph = graph_of(caption, [("dog", []), ("cat", [])], [(0, "chasing", 1, "chase")])
    attested = _evidence("( dog , chase , cat )", "( cat , chase , mouse )")
    assert _swap_obj(attested, caption, graph) == {"a cat chasing a dog"}
    unattested = _evidence("( dog , chase , cat )", "( mouse )")
    assert _swap_obj(unattested, caption, graph) == set()


def test_reversal_between_people_only_for_directed_relations():
    vocab = _evidence("( man , watch , child )", "( child , watch , woman )")
    caption = "man watching small child"
    graph = graph_of(caption, [("man", []), ("child", ["small"])], [(0, "watching", 1, "watch")])
    assert _swap_obj(vocab, caption, graph) == {"small child watching man"}
    vocab = _evidence("( woman , hold , child )", "( child , hold , man )")
    caption = "woman holding a child"  # who can hold whom depends on age
    graph = graph_of(caption, [("woman", []), ("child", [])], [(0, "holding", 1, "hold")])
    assert _swap_obj(vocab, caption, graph) == set()


def test_no_reversal_between_a_person_and_an_animal_or_a_thing():
    vocab = _evidence("( man , ride , horse )", "( horse , ride , man )", times=1)
    caption = "a man riding a horse"  # the reversed triple once, far rarer: not attested
    graph = graph_of(caption, [("man", []), ("horse", [])], [(0, "riding", 1, "ride")])
    vocab.triples["man\tride"]["horse"] = 40
    assert _swap_obj(vocab, caption, graph) == set()
    vocab = _evidence("( man , push , stroller )", "( stroller , push , woman )")
    caption = "a man pushing the baby stroller"  # "baby stroller" is a thing, not a baby
    graph = graph_of(caption, [("man", []), ("baby stroller", [])], [(0, "pushing", 1, "push")])
    assert _swap_obj(vocab, caption, graph) == set()


def test_symmetric_relations_after_a_verb_are_not_turned_round():
    """ "the man is standing next to a woman" says the same as the caption."""
    caption = "a woman is standing next to the man"
    graph = graph_of(
        caption, [("woman", []), ("man", [])], [(0, "standing next to", 1, "stand next to")]
    )
    vocab = _evidence("( woman , stand next to , man )", "( man , stand next to , woman )")
    assert _swap_obj(vocab, caption, graph) == set()
    (why,) = [w for t, f, w in Rewriter(vocab).swap_review(caption, graph) if f == "reverse"]
    assert why == "symmetric relation"


def test_no_part_of_an_animal_turned_round():
    caption = "dark brown tail on a horse"
    graph = graph_of(caption, [("tail", ["dark brown"]), ("horse", [])], [(0, "on", 1, "on")])
    vocab = _evidence("( tail , on , horse )", "( horse , on , tail )")
    assert _swap_obj(vocab, caption, graph) == set()


def test_places_of_one_thing_need_the_very_triple():
    """ "a teddy bear on a park in a bench": bench and park are both the bear's places, and
    what is on a bench is not on a park."""
    caption = "a teddy bear on a bench in a park"
    graph = graph_of(
        caption, [("teddy bear", []), ("bench", []), ("park", [])],
        [(0, "on", 1, "on"), (0, "in", 2, "in")],
    )  # fmt: skip
    vocab = _evidence(
        "( teddy bear , on , bench ) , ( teddy bear , in , park )",
        "( doll , on , park ) , ( doll , in , bench )",
    )
    assert _swap_obj(vocab, caption, graph) == set()


def test_coordinated_objects_are_not_just_reordered_but_parallel_ones_are_exchanged():
    vocab = _evidence(
        "( man , ride , horse )", "( woman , walk , dog )",
        "( woman , ride , horse )", "( man , walk , dog )",
    )  # fmt: skip
    caption = "a man riding a horse and a woman walking a dog"
    graph = graph_of(
        caption, [("man", []), ("horse", []), ("woman", []), ("dog", [])],
        [(0, "riding", 1, "ride"), (2, "walking", 3, "walk")],
    )  # fmt: skip
    assert "a woman riding a horse and a man walking a dog" in _swap_obj(vocab, caption, graph)
    caption = "a man and a woman riding a horse"
    graph = graph_of(
        caption, [("man", []), ("woman", []), ("horse", [])],
        [(0, "riding", 2, "ride"), (1, "riding", 2, "ride")],
    )  # fmt: skip
    assert _swap_obj(vocab, caption, graph) == set()


def test_swap_review_names_why_each_swap_is_refused():
    caption = "white horse in front of a red barn"
    graph = graph_of(
        caption, [("horse", ["white"]), ("barn", ["red"])], [(0, "in front of", 1, "in front of")]
    )  # fmt: skip
    vocab = _evidence("( horse , is , white )", "( barn , is , red )")
    review = Rewriter(vocab).swap_review(caption, graph)
    assert ("swap-att", "att", "not seen on the new noun") in review
    assert ("swap-obj", "reverse", "reversed relation not attested") in review
    assert all(why is not None for _, _, why in review)
    caption = "trees in the snow"
    graph = graph_of(caption, [("trees", []), ("snow", [])], [(0, "in", 1, "in")])
    vocab = _evidence("( tree , in , snow )", "( snow , in , tree )")
    assert ("swap-obj", "reverse", "a substance") in Rewriter(vocab).swap_review(caption, graph)


def test_no_reversal_of_the_same_scene_passives_mutual_verbs_or_lists():
    vocab = _evidence(
        "( zebra , chase , zebra )", "( leash , attach to , dog )", "( dog , attach to , leash )",
        "( woman , talk to , man )", "( man , talk to , woman )",
        "( tree , behind , fence )", "( fence , behind , tree )", "( bench , behind , fence )",
    )  # fmt: skip
    cases = [
        ("a zebra chasing another zebra", [("zebra", []), ("zebra", [])], "chasing", "chase"),
        ("red leash attached to dog", [("leash", ["red"]), ("dog", [])], "attached to",
         "attach to"),
        ("woman is talking to man", [("woman", []), ("man", [])], "talking to", "talk to"),
    ]  # fmt: skip
    for caption, entities, surface, predicate in cases:
        graph = graph_of(caption, entities, [(0, surface, 1, predicate)])
        assert _swap_obj(vocab, caption, graph) == set(), caption
    caption = "a tree and bench behind the fence"
    graph = graph_of(
        caption, [("tree", []), ("bench", []), ("fence", [])],
        [(0, "behind", 2, "behind")],
    )  # fmt: skip
    assert _swap_obj(vocab, caption, graph) == set()


def test_swap_att_moves_onto_hair_only_a_hair_colour():
    """ "white haired man with a blue shirt" never becomes "blue haired man ..."."""
    caption = "white haired man with a blue shirt"
    graph = graph_of(caption, [("man", ["white"]), ("shirt", ["blue"])], [(0, "with", 1, "with")])
    vocab = _evidence(*_coloured("shirt", "man"), "( shirt , is , white )", "( hair , is , white )")
    assert _swap_att(vocab, caption, graph) == set()
    vocab = _evidence(*_coloured("shirt", "man"), "( hair , is , white ) , ( hair , is , blue )")
    assert _swap_att(vocab, caption, graph) == {"blue haired man with a white shirt"}


def test_counts_never_swap_into_an_of_phrase():
    caption = "a bike with tires of two sizes"
    graph = graph_of(
        caption, [("bike", []), ("tires", []), ("sizes", [])],
        [(0, "with", 1, "with"), (1, "of", 2, "of")], counts={2: ("two", 2)},
    )  # fmt: skip
    vocab = _evidence("( bike , with , tire )", "( tire , of , size )")
    assert _swap_att(vocab, caption, graph) == set()


def test_subjects_of_lists_the_subjects_seen_with_a_predicate_and_object():
    vocab = _evidence("( man , ride , horse )", "( girl , ride , horse )", "( man , ride , bike )")
    assert sorted(vocab.subjects_of("ride", "horses")) == ["girl", "man"]
    assert list(vocab.subjects_of("ride", "camel")) == []


def test_no_reversal_of_between_or_of_one_thing_inside_another_of_its_kind():
    vocab = _evidence(
        "( tree , between , building )", "( building , between , tree )",
        "( box , inside , box )",
    )  # fmt: skip
    caption = "a tall tree between buildings"  # "buildings between a tall tree"
    graph = graph_of(
        caption, [("tree", ["tall"]), ("buildings", [])], [(0, "between", 1, "between")]
    )
    assert _swap_obj(vocab, caption, graph) == set()
    caption = "one box inside another box"  # the same scene turned round
    graph = graph_of(
        caption, [("box", []), ("box", [])], [(0, "inside", 1, "inside")],
        counts={0: ("one", 1)},
    )  # fmt: skip
    assert _swap_obj(vocab, caption, graph) == set()


def test_no_attribute_of_no_category_across_categories_and_head_colours_are_hair():
    caption = "a green apron with the starbucks logo"
    graph = graph_of(
        caption, [("apron", ["green"]), ("logo", ["starbucks"])], [(0, "with", 1, "with")]
    )
    vocab = _evidence(*_coloured("apron", "logo"), "( apron , is , starbucks )")
    assert _swap_att(vocab, caption, graph) == set()
    caption = "a gray headed man wearing a blue shirt"
    graph = graph_of(caption, [("man", ["gray"]), ("shirt", ["blue"])], [(0, "wearing", 1, "wear")])
    vocab = _evidence(*_coloured("shirt", "man"), "( shirt , is , gray ) , ( hair , is , gray )")
    assert _swap_att(vocab, caption, graph) == set()  # "a blue headed man"
