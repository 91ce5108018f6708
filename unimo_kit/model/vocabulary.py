"""A corpus vocabulary: the word pieces a training corpus uses, as a BERT tokenizer folder.

A model trained from scratch on a small world (the synthetic presets) sees a few hundred of
BERT's 30,522 word pieces; the word embedding, its optimizer state and the tied word head over
the other 30,000 cost most of a 2-layer model's step and learn nothing. :func:`corpus_piece_ids`
keeps

- every piece the model's tokenizer emits on the corpus,
- the special tokens (``[PAD] [UNK] [CLS] [SEP] [MASK]``),
- every single-character piece (``a``, ``##a``, ...), so a word outside the corpus still
  tokenizes (spelt out) instead of becoming ``[UNK]``;

in the original order. Greedy longest-match word piece over a subset that holds every piece the
full vocabulary emits on a text gives that text the same pieces (at each position the longest
piece of the full vocabulary is in the subset, and no longer piece of the subset can exist, as
it would be in the full one), so the corpus tokenizes exactly as before, only with new ids
(tested). :func:`restrict_vocabulary` cuts the model's word embedding and word-head bias to
those rows; :func:`write_tokenizer_folder` writes the tokenizer a checkpoint carries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unimo_kit.utils import atomic_write

#: Files of a tokenizer folder written by :func:`write_tokenizer_folder`.
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
#: The folder inside a checkpoint that holds its own tokenizer (``config.json`` names it).
CHECKPOINT_TOKENIZER_DIR = "tokenizer"

#: BERT's special tokens and the :class:`~unimo_kit.model.UnimoConfig` fields of their ids.
SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
SPECIAL_ID_FIELDS = {
    "pad_token": "pad_token_id",
    "cls_token": "cls_token_id",
    "sep_token": "sep_token_id",
    "mask_token": "mask_token_id",
}
#: The tokenizer settings copied from the base tokenizer (they decide the normalisation and
#: pre-tokenisation, which must stay as they were for the corpus to tokenize the same).
_SETTINGS = ("do_lower_case", "tokenize_chinese_chars", "strip_accents", "model_max_length")


def _pieces(tokenizer: Any) -> list[str]:
    """The tokenizer's vocabulary as a list, index = id."""
    vocab = tokenizer.get_vocab()
    pieces = [""] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    return pieces


def _is_single_character(piece: str) -> bool:
    return len(piece) == 1 or (piece.startswith("##") and len(piece) == 3)


def corpus_piece_ids(
    tokenizer: Any, texts: Iterable[str], *, batch_size: int = 2048, progress: bool = False
) -> list[int]:
    """The ids (in ``tokenizer``'s vocabulary, ascending) a corpus vocabulary keeps.

    Args:
        tokenizer: the model's HF fast word-piece tokenizer (``load_tokenizer(model)``).
        texts: every text the run tokenizes (streamed; read once).
        batch_size: texts per call of the fast tokenizer.
        progress: show a tqdm bar (texts read) on stderr.

    Returns:
        Sorted ids: pieces the corpus uses, the special tokens, every single-character piece.
    """
    from tqdm import tqdm

    pieces = _pieces(tokenizer)
    keep = {i for i, piece in enumerate(pieces) if _is_single_character(piece)}
    keep |= {tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS.values()}
    backend = tokenizer.backend_tokenizer
    bar = tqdm(desc="corpus vocabulary", unit=" texts", disable=not progress)
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            keep.update(i for enc in backend.encode_batch(batch) for i in enc.ids)
            bar.update(len(batch))
            batch = []
    if batch:
        keep.update(i for enc in backend.encode_batch(batch) for i in enc.ids)
        bar.update(len(batch))
    bar.close()
    return sorted(keep)


def write_tokenizer_folder(
    tokenizer: Any, keep_ids: Sequence[int], folder: str | os.PathLike
) -> Path:
    """Write the BERT word-piece tokenizer of ``tokenizer``'s pieces at ``keep_ids``.

    The folder holds ``vocab.txt`` (one piece a line, in ``keep_ids`` order: the new id is the
    line number), ``tokenizer_config.json`` (the base tokenizer's lower-casing, accent and
    Chinese-character settings) and ``special_tokens_map.json``; each file is written
    atomically and byte for byte the same for the same input, so a run's checkpoints hash the
    same from run to run. ``transformers.BertTokenizerFast.from_pretrained(folder)`` loads it.

    Args:
        tokenizer: the base HF word-piece tokenizer.
        keep_ids: ids of ``tokenizer``'s vocabulary to keep (:func:`corpus_piece_ids`).
        folder: where to write (created if needed).

    Returns:
        The folder.
    """
    pieces = _pieces(tokenizer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {name: getattr(tokenizer, name, None) for name in _SETTINGS}
    if settings["do_lower_case"] is None:  # fast tokenizers keep it in the init kwargs
        settings["do_lower_case"] = tokenizer.init_kwargs.get("do_lower_case", True)
    settings["tokenize_chinese_chars"] = tokenizer.init_kwargs.get("tokenize_chinese_chars", True)
    settings["strip_accents"] = tokenizer.init_kwargs.get("strip_accents")
    config = {"tokenizer_class": "BertTokenizer", **settings, **SPECIAL_TOKENS}
    with atomic_write(folder / VOCAB_FILE) as handle:
        handle.writelines(pieces[i] + "\n" for i in keep_ids)
    with atomic_write(folder / TOKENIZER_CONFIG_FILE) as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    with atomic_write(folder / SPECIAL_TOKENS_FILE) as handle:
        handle.write(json.dumps(SPECIAL_TOKENS, indent=2, sort_keys=True) + "\n")
    return folder


def copy_tokenizer_folder(source: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Copy the files :func:`write_tokenizer_folder` writes from ``source`` to ``folder``
    (atomically each; nothing when both are the same folder)."""
    source, folder = Path(source), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if source.resolve() == folder.resolve():
        return folder
    for name in (VOCAB_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_FILE):
        if not (source / name).is_file():
            if name == VOCAB_FILE:
                raise FileNotFoundError(f"{source}: a tokenizer folder needs {VOCAB_FILE}")
            continue
        with atomic_write(folder / name, mode="wb") as handle:
            handle.write((source / name).read_bytes())
    return folder


def special_token_ids(pieces: Sequence[str]) -> dict[str, int]:
    """The :class:`~unimo_kit.model.UnimoConfig` special-id fields for a vocabulary.

    Raises:
        ValueError: a special token is missing.
    """
    index = {piece: i for i, piece in enumerate(pieces)}
    missing = [t for name, t in SPECIAL_TOKENS.items() if t not in index]
    if missing:
        raise ValueError(f"the vocabulary lacks the special tokens {missing}")
    return {field: index[SPECIAL_TOKENS[name]] for name, field in SPECIAL_ID_FIELDS.items()}


def restrict_vocabulary(model: nn.Module, keep_ids: Sequence[int], tokenizer: str) -> nn.Module:
    """Keep only the rows ``keep_ids`` of the word embedding and of the word head's bias.

    Every other weight is left as it is, so a model built with the full vocabulary and then
    restricted starts where the full model starts on the pieces it keeps. The config gets the
    new ``vocab_size``, special-token ids and ``tokenizer`` (the folder of the new vocabulary).

    Args:
        model: a :class:`~unimo_kit.model.UnimoModel` (changed in place).
        keep_ids: ascending ids of the current vocabulary (:func:`corpus_piece_ids`).
        tokenizer: the tokenizer folder of the new vocabulary (:func:`write_tokenizer_folder`).

    Returns:
        The model.
    """
    cfg = model.config
    keep = torch.as_tensor(list(keep_ids), dtype=torch.long)
    if keep.numel() == 0 or bool((keep[1:] <= keep[:-1]).any()):
        raise ValueError("keep_ids must be ascending and not empty")
    if int(keep[-1]) >= cfg.vocab_size:
        raise ValueError(f"keep_ids reach {int(keep[-1])} >= vocab_size {cfg.vocab_size}")
    new_id = {int(old_id): new for new, old_id in enumerate(keep.tolist())}
    specials = {}
    for field in SPECIAL_ID_FIELDS.values():
        old_id = getattr(cfg, field)
        if old_id not in new_id:
            raise ValueError(f"keep_ids lack the special token {field}={old_id}")
        specials[field] = new_id[old_id]
    old = model.embeddings.word_embeddings
    with torch.no_grad():  # _weight: no random init drawn (the global RNG stays as it was)
        rows = old.weight[keep.to(old.weight.device)].clone()  # (V', D)
        bias = model.lm_head.bias[keep.to(model.lm_head.bias.device)].clone()  # (V',)
    embedding = nn.Embedding(
        len(keep), cfg.hidden_size, specials["pad_token_id"], sparse=old.sparse, _weight=rows
    )
    model.embeddings.word_embeddings = embedding
    model.lm_head.bias = nn.Parameter(bias)
    cfg.vocab_size = len(keep)
    cfg.tokenizer = str(tokenizer)
    for field, value in specials.items():
        setattr(cfg, field, value)
    return model


def subset_tokenizer(tokenizer: Any, keep_ids: Sequence[int]) -> Any:
    """The tokenizer of ``tokenizer``'s pieces at ``keep_ids``, loaded (its folder written to a
    temporary directory and removed once read)."""
    import tempfile

    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory(prefix="unimo-vocab-") as tmp:
        write_tokenizer_folder(tokenizer, keep_ids, tmp)
        return BertTokenizerFast.from_pretrained(tmp)


def ids_in(tokenizer: Any, folder: str | os.PathLike) -> list[int]:
    """The ids in ``tokenizer``'s vocabulary of the pieces of the tokenizer folder ``folder``
    (a checkpoint's corpus vocabulary), in the folder's order.

    Raises:
        ValueError: a piece of the folder is not in ``tokenizer``'s vocabulary.
    """
    path = Path(folder) / VOCAB_FILE
    pieces = path.read_text(encoding="utf-8").splitlines()
    vocab = tokenizer.get_vocab()
    missing = [p for p in pieces if p not in vocab]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} pieces are not in the base vocabulary, e.g. {missing[:5]}"
        )
    return [vocab[p] for p in pieces]
