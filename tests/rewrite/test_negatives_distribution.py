"""Additions and swaps shaped like real captions (issue 20): what is added is what real
captions name together, in their form; no stacked or default attributes; no swaps into
possessive or partitive slots; counts swap between parallel objects only."""

from __future__ import annotations

from rewrite_graphs import evidence as _evidence
from rewrite_graphs import graph_of
from rewrite_graphs import negative_texts as _texts

from unimo_kit.rewrite.negatives import Rewriter
from unimo_kit.rewrite.vocab import Vocabulary, part_related


def test_cooccurrence_is_counted_and_saved(tmp_path):
    vocab = _evidence("( cat , on , sofa ) , ( dog , on , sofa )", "( cat , on , bed )")
    assert vocab.cooccur_count("cat", "dog") == 3
    assert vocab.cooccur_count("dogs", "sofa") == 3  # lemmatised
    assert vocab.cooccur_count("dog", "bed") == 0
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").cooccur == vocab.cooccur
    old = vocab.to_json()
    del old["cooccur"]  # a table written before the count existed still loads
    assert Vocabulary.from_json(old).cooccur == {}


def test_add_obj_only_what_is_seen_together():
    caption = "a cat on a sofa"
    graph = graph_of(caption, [("cat", []), ("sofa", [])], [(0, "on", 1, "on")])
    apart = _evidence("( cat , on , sofa )", "( dog , on , sofa )", "( dog )")
    assert _texts(Rewriter(apart, types=["add-obj"]), caption, graph) == set()
    together = _evidence("( cat , on , sofa ) , ( dog , on , sofa )")
    assert _texts(Rewriter(together, types=["add-obj"]), caption, graph) == {
        "a cat and a dog on a sofa"
    }


def test_add_obj_conjunct_takes_the_anchors_determiner():
    vocab = _evidence("( cat , on , sofa ) , ( dog , on , sofa )")
    caption = "cat on sofa"  # region-caption style: bare nouns stay bare
    graph = graph_of(caption, [("cat", []), ("sofa", [])], [(0, "on", 1, "on")])
    assert _texts(Rewriter(vocab, types=["add-obj"]), caption, graph) == {"cat and dog on sofa"}
    caption = "the cat is on the sofa"
    graph = graph_of(caption, [("cat", []), ("sofa", [])], [(0, "on", 1, "on")])
    assert _texts(Rewriter(vocab, types=["add-obj"]), caption, graph) == {
        "the cat and the dog are on the sofa"
    }


def test_add_obj_no_part_of_what_is_there():
    assert part_related("window", "bus") and part_related("tree", "trunk")
    assert not part_related("man", "woman")
    caption = "a bus on a road"
    graph = graph_of(caption, [("bus", []), ("road", [])], [(0, "on", 1, "on")])
    vocab = _evidence("( bus , on , road ) , ( window , on , road )")
    assert _texts(Rewriter(vocab, types=["add-obj"]), caption, graph) == set()


def test_add_att_checkable_seen_and_not_the_usual_value():
    caption = "a bowl on a table"
    graph = graph_of(caption, [("bowl", []), ("table", [])], [(0, "on", 1, "on")])
    graphs = ["( bowl , is , white )"] * 4 + ["( bowl , is , blue )", "( bowl , is , large )"]
    vocab = _evidence(*graphs, times=3)  # white: 12 of 15 colours, the usual one
    texts = _texts(Rewriter(vocab, types=["add-att"]), caption, graph)
    assert texts == {"a blue bowl on a table"}  # not "white", and no size beside a colour


def test_add_att_size_only_where_no_colour_can_go():
    caption = "a red bowl"
    graph = graph_of(caption, [("bowl", ["red"])])
    vocab = _evidence("( bowl , is , red )", "( bowl , is , blue )", "( bowl , is , large )")
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == {"a large red bowl"}


def test_add_att_never_a_value_that_commonly_holds():
    """A colour over a fifth of the noun's colours (with its synonyms: ``grey`` + ``gray``)
    may well be what a typical image shows; the mode never is added either."""
    caption = "gravel on a path"
    graph = graph_of(caption, [("gravel", []), ("path", [])], [(0, "on", 1, "on")])
    colours = ["grey"] * 3 + ["gray"] * 2 + ["brown"] * 4 + ["white"] * 3 + ["beige"] * 3
    colours += ["black"] * 3 + ["red"] * 3
    vocab = _evidence(*(f"( gravel , is , {c} )" for c in colours), times=1)
    texts = _texts(Rewriter(vocab, types=["add-att"]), caption, graph)
    # brown the mode, beige a brown (WordNet), grey+gray 5/21 (> 20 %); the rest 3/21 each
    assert texts == {f"{c} gravel on a path" for c in ("white", "black", "red")}


def test_add_att_no_size_where_the_colours_seen_are_all_common():
    caption = "a mountain"
    graph = graph_of(caption, [("mountain", [])])
    vocab = _evidence("( mountain , is , white )", "( mountain , is , large )")
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == set()


def test_add_att_not_inside_a_split_compound():
    """``stop sign post``: the attribute would land between the compound's nouns."""
    caption = "leaves on a stop sign post"
    graph = graph_of(
        caption, [("leaves", []), ("stop sign", []), ("post", [])], [(0, "on", 2, "on")]
    )
    colours = ["black"] * 9 + ["white"] * 3 + ["red"] * 3 + ["blue"] * 3
    vocab = _evidence(*(f"( post , is , {c} )" for c in colours), times=1)
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == set()
    caption = "leaves on a post"
    graph = graph_of(caption, [("leaves", []), ("post", [])], [(0, "on", 1, "on")])
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == {
        f"leaves on a {c} post" for c in ("white", "red", "blue")
    }


def test_add_att_no_stacking_and_no_people():
    vocab = _evidence(
        "( mirror , is , oval ) , ( mirror , is , frameless ) , ( mirror , is , silver )",
        "( man , is , white ) , ( man , is , metal ) , ( man , is , old )",
    )
    caption = "a frameless oval mirror"
    graph = graph_of(caption, [("mirror", ["frameless", "oval"])])
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == set()
    caption = "a man"
    graph = graph_of(caption, [("man", [])])
    assert _texts(Rewriter(vocab, types=["add-att"]), caption, graph) == set()


def test_count_swap_only_between_parallel_objects():
    caption = "two people on a mountain"
    graph = graph_of(
        caption, [("people", []), ("mountain", [])], [(0, "on", 1, "on")],
        counts={0: ("two", 2)},
    )  # fmt: skip
    vocab = _evidence("( person , on , mountain )", "( mountain )")
    assert _texts(Rewriter(vocab, types=["swap-att"]), caption, graph) == set()


def test_swap_obj_not_into_possessive_or_partitive_slots():
    vocab = _evidence("( tree , behind , building )", "( building , behind , tree )")
    caption = "rows of trees behind the buildings"
    graph = graph_of(caption, [("trees", []), ("buildings", [])], [(0, "behind", 1, "behind")])
    assert _texts(Rewriter(vocab, types=["swap-obj"]), caption, graph) == set()
    caption = "trees behind the buildings"  # the same reversal where both are plain phrases
    graph = graph_of(caption, [("trees", []), ("buildings", [])], [(0, "behind", 1, "behind")])
    assert _texts(Rewriter(vocab, types=["swap-obj"]), caption, graph) == {
        "the buildings behind trees"
    }


def test_swap_att_each_attribute_well_seen_on_its_new_noun():
    caption = "white horse standing on green grass"
    graph = graph_of(
        caption, [("horse", ["white"]), ("grass", ["green"])], [(0, "standing on", 1, "stand on")]
    )  # fmt: skip
    rare = _evidence("( horse , is , white )", "( grass , is , green )", "( grass , is , white )")
    rare.noun_attributes["horse"]["white"] = 40
    rare.noun_attributes["horse"]["green"] = 1  # once in 41: a slip, not evidence
    assert _texts(Rewriter(rare, types=["swap-att"]), caption, graph) == set()
    rare.noun_attributes["horse"]["green"] = 3
    assert _texts(Rewriter(rare, types=["swap-att"]), caption, graph) == {
        "green horse standing on white grass"
    }


def test_swap_obj_no_reordered_coordination():
    caption = "a man holding a ball and a racket"
    graph = graph_of(
        caption, [("man", []), ("ball", []), ("racket", [])],
        [(0, "holding", 1, "hold")],
    )  # fmt: skip
    vocab = _evidence("( man , hold , ball )", "( man , hold , racket )", "( racket )")
    assert _texts(Rewriter(vocab, types=["swap-obj"]), caption, graph) == set()


def test_add_obj_no_person_beside_an_animal_and_no_clause_after():
    vocab = _evidence(
        "( woman , next to , man ) , ( sheep , next to , man )",
        "( boy , ride , skateboard ) , ( woman , ride , skateboard )",
    )
    caption = "a woman next to the man"
    graph = graph_of(caption, [("woman", []), ("man", [])], [(0, "next to", 1, "next to")])
    assert _texts(Rewriter(vocab, types=["add-obj"]), caption, graph) == set()
    caption = "a boy that is riding a skateboard"
    graph = graph_of(caption, [("boy", []), ("skateboard", [])], [(0, "riding", 1, "ride")])
    assert not any(
        "boy and" in t for t in _texts(Rewriter(vocab, types=["add-obj"]), caption, graph)
    )


def test_add_obj_no_second_holder_of_one_thing():
    vocab = _evidence("( man , hold , donut ) , ( girl , hold , donut )")
    caption = "a man holding a glazed donut"
    graph = graph_of(caption, [("man", []), ("donut", ["glazed"])], [(0, "holding", 1, "hold")])
    assert not any(
        "man and" in t for t in _texts(Rewriter(vocab, types=["add-obj"]), caption, graph)
    )


def test_replace_rel_never_draws_a_passive_verb():
    caption = "light hanging from the ceiling"
    graph = graph_of(
        caption, [("light", []), ("ceiling", [])], [(0, "hanging from", 1, "hang from")]
    )
    vocab = _evidence(
        "( light , hang from , ceiling )", "( light , mount on , ceiling )",
        "( light , attach to , ceiling )",
    )  # fmt: skip
    assert _texts(Rewriter(vocab, types=["replace-rel"]), caption, graph) == set()
