"""Retrieval R@K: hand-computed cases (ties included) and chunked vs a dense sort reference."""

import json
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.eval.retrieval import retrieval_metrics, retrieval_ranks


def dense_reference(image_emb, text_emb, t2i):
    """Ranks by a full sort where, among equal scores, right candidates are placed LAST."""
    scores = image_emb.astype(np.float64) @ text_emb.T.astype(np.float64)
    i2t = []
    for i in range(len(image_emb)):
        right = t2i == i
        # lexsort: last key primary -> score descending, then right after wrong
        order = np.lexsort((right, -scores[i]))
        positions = np.nonzero(right[order])[0]
        i2t.append(positions.min() + 1 if len(positions) else 0)
    t2i_ranks = []
    for t in range(len(text_emb)):
        right = np.arange(len(image_emb)) == t2i[t]
        order = np.lexsort((right, -scores[:, t]))
        t2i_ranks.append(np.nonzero(right[order])[0][0] + 1)
    return np.array(i2t), np.array(t2i_ranks)


def test_hand_computed_with_ties():
    # 3 images on the axes; 5 captions: image 0 has captions 0, 1; image 1 has 2; image 2 has 3, 4
    images = np.eye(3, dtype=np.float32)
    texts = np.array(
        [
            [0, 1, 0],  # caption of image 0 that looks like image 1
            [1, 0, 0],  # caption of image 0, exact
            [0.5, 0.5, 0],  # caption of image 1: ties between images 0 and 1
            [0, 0, 0],  # caption of image 2 scoring 0 everywhere: a 3-way tie
            [0, 1, 0],  # caption of image 2 that looks like image 1
        ],
        dtype=np.float32,
    )
    t2i = np.array([0, 0, 1, 2, 2])
    i2t, t2i_ranks = retrieval_ranks(images, texts, t2i)
    # image 0: best right caption 1 (score 1), no wrong caption scores >= 1 -> rank 1
    # image 1: right caption 2 scores .5; wrong captions 0 and 4 score 1 -> rank 3
    # image 2: right captions score 0; every wrong caption scores >= 0 (0, 0, 0) -> rank 4
    assert i2t.tolist() == [1, 3, 4]
    # caption 0 -> image 0 scores 0, image 1 scores 1 (wrong, above), image 2 ties -> 3
    # caption 1 -> rank 1; caption 2 ties with image 0 -> pessimistic rank 2
    # caption 3: three-way tie -> 3
    # caption 4 -> image 2 scores 0, image 1 scores 1, image 0 ties -> 3
    assert t2i_ranks.tolist() == [3, 1, 2, 3, 3]

    m = retrieval_metrics(images, texts, t2i, ks=(1, 2, 3))
    assert m["i2t_r1"] == pytest.approx(100 / 3)
    assert m["i2t_r3"] == pytest.approx(200 / 3)
    assert m["t2i_r1"] == pytest.approx(20.0)
    assert m["t2i_r2"] == pytest.approx(40.0)
    assert m["t2i_r3"] == pytest.approx(100.0)
    expected_rsum = 100 / 3 + 100 / 3 + 200 / 3 + 20 + 40 + 100
    assert m["rsum"] == pytest.approx(expected_rsum)
    assert m["i2t_medr"] == 3 and m["t2i_medr"] == 3


def test_constant_scores_never_hit():
    images = np.ones((4, 8), dtype=np.float32)
    texts = np.ones((8, 8), dtype=np.float32)
    t2i = np.repeat(np.arange(4), 2)
    i2t, t2i_ranks = retrieval_ranks(images, texts, t2i)
    assert (i2t == 7).all()  # 6 wrong captions tie -> 1 + 6
    assert (t2i_ranks == 4).all()  # 3 wrong images tie
    m = retrieval_metrics(images, texts, t2i, ks=(1, 5, 10))
    assert m["i2t_r1"] == 0 and m["t2i_r1"] == 0 and m["i2t_r10"] == 100


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunked_matches_dense_reference(chunk):
    rng = np.random.default_rng(0)
    n_img, per = 40, 3
    # small integer grid so many exact ties occur and float32 dot products are exact
    images = rng.integers(-2, 3, size=(n_img, 6)).astype(np.float32)
    t2i = np.repeat(np.arange(n_img), per)
    texts = images[t2i] + rng.integers(-2, 3, size=(n_img * per, 6)).astype(np.float32)
    texts[::5] = texts[1::5][: len(texts[::5])]  # duplicated captions: more ties
    got = retrieval_ranks(images, texts, t2i, chunk=chunk)
    want = dense_reference(images, texts, t2i)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_image_without_caption_is_left_out():
    images = np.eye(3, dtype=np.float32)
    texts = np.eye(3, dtype=np.float32)[:2]
    m = retrieval_metrics(images, texts, np.array([0, 1]), ks=(1,))
    assert m["num_images"] == 2 and m["i2t_r1"] == 100.0
    m = retrieval_metrics(images, texts, np.array([0, 1]), ks=(1,), text_keys=["a", "b"])
    assert m["num_images"] == 2 and m["i2t_r1"] == 100.0 and m["num_shared_captions"] == 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="text_to_image"):
        retrieval_ranks(np.eye(2), np.eye(2), np.array([0, 5]))
    with pytest.raises(ValueError, match="sizes differ"):
        retrieval_ranks(np.eye(2), np.ones((2, 3)), np.array([0, 1]))


def test_chance_recall_matches_simulation():
    from unimo_kit.eval.retrieval import chance_recall

    # hand: 3 texts, image 0 owns 2, image 1 owns 1; K=1: i2t P = (2/3 + 1/3) / 2 = 0.5
    c = chance_recall(np.array([2, 1]), ks=(1, 2))
    assert c["i2t_r1"] == pytest.approx(50.0)
    # K=2: image 0 misses with prob (1/3 * 0/2) = 0 -> 1; image 1 misses (2/3 * 1/2) -> 2/3
    assert c["i2t_r2"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert c["t2i_r1"] == pytest.approx(50.0) and c["t2i_r2"] == 100.0
    rng = np.random.default_rng(0)
    images, t2i = rng.normal(size=(20, 8)), np.repeat(np.arange(20), 3)
    sims = [retrieval_metrics(images, rng.normal(size=(60, 8)), t2i, ks=(5,)) for _ in range(200)]
    mean = np.mean([m["i2t_r5"] for m in sims])
    assert mean == pytest.approx(sims[0]["chance"]["i2t_r5"], abs=3.0)


def keyed_reference(image_emb, text_emb, t2i, text_keys, image_keys):
    """Dense ranks with "same caption / same image" rights, built from a full texts x images
    ownership table (the O(N_t x N_i) way the library avoids)."""
    text_keys, image_keys = np.asarray(text_keys), np.asarray(image_keys)
    same_image = image_keys[:, None] == image_keys[None, :]  # (N_i, N_i)
    owns = same_image[:, t2i]  # (N_i, N_t): image i is the same image as text t's owner
    same_caption = text_keys[:, None] == text_keys[None, :]  # (N_t, N_t)
    owns_caption = (owns.astype(int) @ same_caption.astype(int)) > 0  # (N_i, N_t)
    scores = image_emb.astype(np.float64) @ text_emb.T.astype(np.float64)

    def rank(row, right):
        best = row[right].max()
        return 1 + int(((row >= best) & ~right).sum())

    i2t = [rank(scores[i], owns_caption[i]) for i in range(len(image_emb))]
    t2i_ranks = [rank(scores[:, t], owns_caption[:, t]) for t in range(len(text_emb))]
    return np.array(i2t), np.array(t2i_ranks)


def test_shared_caption_string_is_right_for_every_image_owning_it():
    # the review's case: image 0 and image 1 both own "a red circle"
    images = np.array([[1, 0], [0.6, 0.8]], dtype=np.float32)
    texts = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    t2i = np.array([0, 1, 1])
    keys = ["a red circle", "a red circle", "a blue square"]
    old = retrieval_metrics(images, texts, t2i, ks=(1,))
    assert old["i2t_r1"] == 50.0 and "num_shared_captions" not in old  # default unchanged
    m = retrieval_metrics(images, texts, t2i, ks=(1,), text_keys=keys)
    assert m["i2t_r1"] == 100.0 and m["t2i_r1"] == 100.0
    assert m["num_shared_captions"] == 1
    i2t, t2i_ranks = retrieval_ranks(images, texts, t2i, text_keys=keys)
    assert i2t.tolist() == [1, 1] and t2i_ranks.tolist() == [1, 1, 1]


def test_same_image_path_is_right_in_text_to_image():
    # records 0 and 1 are the same image file with identical embeddings: a tie that is no miss
    images = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    texts = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    t2i = np.array([0, 1, 2])
    assert retrieval_ranks(images, texts, t2i)[1].tolist() == [2, 2, 1]
    i2t, t2i_ranks = retrieval_ranks(images, texts, t2i, image_keys=["a", "a", "b"])
    assert t2i_ranks.tolist() == [1, 1, 1]
    assert i2t.tolist() == [1, 1, 1]  # image 1's captions include image 0's


def test_wrong_candidates_still_tie_pessimistically_with_keys():
    images = np.ones((3, 4), dtype=np.float32)
    texts = np.ones((4, 4), dtype=np.float32)
    t2i = np.array([0, 1, 1, 2])
    keys = ["x", "x", "y", "z"]  # images 0 and 1 share "x"
    i2t, t2i_ranks = retrieval_ranks(images, texts, t2i, text_keys=keys)
    # image 0: right = texts 0, 1 -> wrong 2, 3 tie -> 3; image 1: right 0, 1, 2 -> 2; image 2: 4
    assert i2t.tolist() == [3, 2, 4]
    # text 0/1 ("x"): right images 0, 1 -> 1 wrong tie -> 2; text 2: 3; text 3: 3
    assert t2i_ranks.tolist() == [2, 2, 3, 3]


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_keyed_chunked_matches_dense_reference(chunk):
    rng = np.random.default_rng(1)
    n_img, per = 30, 3
    images = rng.integers(-2, 3, size=(n_img, 6)).astype(np.float32)
    image_keys = rng.integers(0, 24, size=n_img)  # some records share an image path
    images = images[np.unique(image_keys, return_inverse=True)[1]]  # same path, same embedding
    t2i = np.repeat(np.arange(n_img), per)
    text_keys = rng.integers(0, 50, size=n_img * per)  # many shared caption strings
    texts = rng.integers(-2, 3, size=(50, 6)).astype(np.float32)[text_keys]
    got = retrieval_ranks(
        images, texts, t2i, chunk=chunk, text_keys=text_keys.tolist(), image_keys=image_keys
    )
    want = keyed_reference(images, texts, t2i, text_keys, image_keys)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_keys_must_match_lengths():
    with pytest.raises(ValueError, match="text_keys"):
        retrieval_ranks(np.eye(2), np.eye(2), np.array([0, 1]), text_keys=["a"])
    with pytest.raises(ValueError, match="image_keys"):
        retrieval_ranks(np.eye(2), np.eye(2), np.array([0, 1]), image_keys=["a", "b", "c"])


class _LookupScorer:
    """Embeds texts and images by a table (unknown: the zero vector)."""

    name = "lookup"

    def __init__(self, table):
        self.table = table

    def _emb(self, items):
        return np.array([self.table.get(x, [0.0, 0.0]) for x in items], dtype=np.float32)

    def encode_texts(self, texts):
        return self._emb(texts)

    def encode_images(self, images):
        return self._emb([Path(p).name for p in images])


def test_evaluate_retrieval_merges_normalised_captions(tmp_path):
    from unimo_kit.eval.retrieval import evaluate_retrieval

    pairs = tmp_path / "pairs.jsonl"
    records = [
        {"id": "a", "image": "a.jpg", "captions": ["A red  circle"]},
        {"id": "b", "image": "b.jpg", "captions": ["a red circle", "a blue square"]},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    scorer = _LookupScorer(
        {
            "a.jpg": [1, 0],
            "b.jpg": [0.6, 0.8],
            "A red  circle": [1, 0],
            "a red circle": [1, 0],
            "a blue square": [0, 1],
        }
    )
    m = evaluate_retrieval(scorer, str(pairs), ks=(1,))
    assert m["i2t_r1"] == 100.0 and m["t2i_r1"] == 100.0 and m["num_shared_captions"] == 1
    old = evaluate_retrieval(scorer, str(pairs), ks=(1,), shared_captions=False)
    assert old["i2t_r1"] == 50.0 and "num_shared_captions" not in old
