"""Plausibility of sentences under a language model, to rank rewrite candidates.

:class:`LanguageModelScorer` loads a Hugging Face model by local path (or a name in the local
cache; online, a hub name) and scores each sentence by its log-likelihood:

- a **masked LM** (BERT, RoBERTa, ...) by its *pseudo-log-likelihood* (Salazar et al., ACL 2020,
  "Masked Language Model Scoring"): each token is masked in turn and the log-probability of the
  true token at the mask is summed. With ``pll="word-l2r"`` (the default) the later pieces of
  the same word are masked too (Kauf & Ivanova, ACL 2023, "A Better Way to Do Masked Language
  Model Scoring"), so a word split into several pieces is not scored as near-certain just
  because its pieces predict one another; ``pll="token"`` is the original one-mask PLL.
- a **causal LM** (GPT-2, Llama, ...) by the sum of ``log p(token | tokens before it)``, the
  first token conditioned on the BOS token when the tokenizer has one.

:meth:`LanguageModelScorer.score` returns the per-token **mean** by default (``reduction="sum"``
for the plain total). The rewriter compares a candidate with its caption, and candidates differ
in length (an added attribute or object adds tokens, a replacement word may split into more
pieces): a sum charges every extra token a few nats whatever its fit, so a longer candidate
always looks less plausible; the mean compares how well the tokens fit, and ranks candidates of
one token count exactly as the sum does.

Inference only: the model is in eval mode, scored under ``torch.inference_mode``, in float32,
so scores are deterministic on a device and a text's score does not depend on the batch it is
in (up to float rounding). The masked copies of all texts of a call are batched together,
sorted by length, and the order is restored. Nothing heavy is imported until a scorer is made;
weights load on the first :meth:`~LanguageModelScorer.score` and are not pickled.

>>> scorer = LanguageModelScorer("models/bert-base-uncased")  # doctest: +SKIP
>>> scorer.score(["a dog on a couch", "a couch on a dog"])  # doctest: +SKIP
array([-2.61, -3.94], dtype=float32)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unimo_kit.resources import ResourceNotFound
from unimo_kit.utils.jsonl import find_lone_surrogate

logger = logging.getLogger("unimo_kit")

Kind = Literal["masked", "causal"]
PLL_MODES = ("word-l2r", "token")
REDUCTIONS = ("mean", "sum")


@dataclass
class _Encoded:
    """One tokenized text: its ids, and per scored position the positions to mask with it."""

    ids: list[int]  # token ids, special tokens included
    targets: list[int]  # positions whose token is scored
    masks: list[tuple[int, ...]]  # masked LM: the positions masked when scoring each target


def model_kind(config: Any) -> Kind:
    """Whether a transformers config describes a masked or a causal language model.

    The saved ``architectures`` decide (``*ForMaskedLM`` / ``*ForCausalLM``, ``*LMHeadModel``);
    without them, the model type's place in transformers' masked-LM and causal-LM tables
    (a type in both, such as BERT, is masked unless the config says ``is_decoder``).

    Args:
        config: a ``transformers.PretrainedConfig``.

    Returns:
        ``"masked"`` or ``"causal"``.

    Raises:
        ValueError: an encoder-decoder, or a type with no language-model head.
    """
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING

    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"{config.model_type} is an encoder-decoder model; the scorer takes a masked or "
            "causal language model"
        )
    for architecture in getattr(config, "architectures", None) or ():
        if architecture.endswith("ForMaskedLM"):
            return "masked"
        if architecture.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal"
    masked = type(config) in MODEL_FOR_MASKED_LM_MAPPING
    causal = type(config) in MODEL_FOR_CAUSAL_LM_MAPPING
    if masked and not (causal and getattr(config, "is_decoder", False)):
        return "masked"
    if causal:
        return "causal"
    raise ValueError(
        f"model type {config.model_type!r} has no masked or causal language-model head"
    )


def _offline() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def load_config(name_or_path: str | os.PathLike) -> tuple[Any, bool]:
    """The config of ``name_or_path``: a local folder, else a name in the local Hugging Face
    cache, else (when not offline) a hub download.

    Args:
        name_or_path: a folder in ``save_pretrained`` layout, or a model name.

    Returns:
        ``(config, local_only)``: ``local_only`` tells the later loads to stay off the network.

    Raises:
        ResourceNotFound: nothing found; the message says what was tried and that the weights
            must be local.
    """
    from transformers import AutoConfig

    name = os.fspath(name_or_path)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ResourceNotFound(
                f"language model folder {folder} has no config.json: save the model and its "
                "tokenizer there with save_pretrained"
            )
        return AutoConfig.from_pretrained(folder, local_files_only=True), True
    tried = [f"a local folder {folder.resolve()} (does not exist)"]
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True), True
    except (OSError, ValueError):
        tried.append("the local Hugging Face cache (not there)")
    if _offline():
        tried.append("no download (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set)")
    else:
        try:
            return AutoConfig.from_pretrained(name), False
        except (OSError, ValueError) as exc:
            tried.append(f"the Hugging Face hub ({type(exc).__name__})")
    raise ResourceNotFound(
        f"language model {name!r} not found; tried {', '.join(tried)}. No weights ship with "
        "unimo_kit: the weights must be local, as a folder holding config.json, the weights and "
        "the tokenizer (save_pretrained layout), or already in the Hugging Face cache"
    )


class LanguageModelScorer:
    """Rank sentences by plausibility under a masked or causal language model.

    Args:
        name_or_path: a local model folder (``save_pretrained`` layout, tokenizer included),
            or a name in the Hugging Face cache (online: a hub name). Its config decides
            whether it is scored as a masked or a causal LM (:func:`model_kind`).
        device: torch device (default: CUDA when visible, else CPU).
        batch_size: sequences per forward pass (a masked LM needs one masked copy per token,
            so a call's copies of all texts are batched together).
        max_length: tokens per text, special tokens included; longer texts are cut (and a
            warning says how many).
        pll: masked LMs only: ``"word-l2r"`` (default) masks the scored token and the later
            pieces of its word; ``"token"`` masks the scored token alone.

    Raises:
        ResourceNotFound: the model cannot be found locally (see :func:`load_config`).
        ValueError: the model is neither a masked nor a causal LM, or an option is out of range.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 64,
        pll: str = "word-l2r",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        if pll not in PLL_MODES:
            raise ValueError(f"pll must be one of {', '.join(PLL_MODES)}, got {pll!r}")
        self.name_or_path = os.fspath(name_or_path)
        config, self._local_only = load_config(self.name_or_path)
        self.kind: Kind = model_kind(config)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.pll = pll
        self._model: Any = None
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def __repr__(self) -> str:
        return f"LanguageModelScorer({self.name_or_path!r}, kind={self.kind!r})"

    # ------------------------------------------------------------------ loading

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

            from unimo_kit.resources import torch_device

            self.device = torch_device(self.device)
            local = {"local_files_only": True} if self._local_only else {}
            tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, **local)
            auto = AutoModelForMaskedLM if self.kind == "masked" else AutoModelForCausalLM
            model, info = auto.from_pretrained(
                self.name_or_path, output_loading_info=True, dtype=torch.float32, **local
            )
            if info.get("missing_keys"):
                missing = sorted(info["missing_keys"])
                raise ValueError(
                    f"{self.name_or_path} has no trained {self.kind} language-model head "
                    f"({len(missing)} weights missing, e.g. {missing[0]}): its scores would be "
                    "random; pass a model saved with its LM head (e.g. *ForMaskedLM, "
                    "*ForCausalLM)"
                )
            if self.kind == "masked" and tokenizer.mask_token_id is None:
                raise ValueError(f"the tokenizer of {self.name_or_path} has no mask token")
            self._tokenizer, self._model = tokenizer, model.to(self.device).eval()
        return self._tokenizer, self._model

    # ------------------------------------------------------------------ tokenizing

    def _encode(self, texts: Sequence[str]) -> list[_Encoded]:
        tokenizer, _ = self._load()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, not str")
            problem = find_lone_surrogate(text)
            if problem:
                raise ValueError(f"text {i}: {problem}")
        encoded = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=False,
            return_special_tokens_mask=True,
        )
        out, cut = [], 0
        for i in range(len(texts)):
            ids = list(encoded["input_ids"][i])
            special = list(encoded["special_tokens_mask"][i])
            words = encoded.word_ids(i) if encoded.is_fast else [None] * len(ids)
            if self.kind == "causal":
                bos = tokenizer.bos_token_id
                if bos is not None and (not ids or ids[0] != bos):
                    ids, special, words = [bos, *ids], [1, *special], [None, *words]
            if len(ids) > self.max_length:
                cut += 1
                ids, special, words = self._truncate(ids, special, words)
            if self.kind == "causal":
                targets = list(range(1, len(ids)))
                masks: list[tuple[int, ...]] = []
            else:
                targets = [p for p in range(len(ids)) if not special[p]]
                masks = [self._mask_set(p, words, targets) for p in targets]
            if not targets:
                raise ValueError(f"text {i} ({texts[i]!r}) has no token to score")
            out.append(_Encoded(ids=ids, targets=targets, masks=masks))
        if cut:
            logger.warning(
                "%d of %d text(s) longer than %d tokens were cut (max_length)",
                cut,
                len(texts),
                self.max_length,
            )
        return out

    def _truncate(
        self, ids: list[int], special: list[int], words: list[int | None]
    ) -> tuple[list[int], list[int], list[int | None]]:
        """Cut to ``max_length`` keeping a closing special token (BERT's ``[SEP]``)."""
        keep_last = self.kind == "masked" and special[-1]
        n = self.max_length - (1 if keep_last else 0)
        tail = (ids[-1:], special[-1:], words[-1:]) if keep_last else ([], [], [])
        return ids[:n] + tail[0], special[:n] + tail[1], words[:n] + tail[2]

    def _mask_set(self, p: int, words: list[int | None], targets: list[int]) -> tuple[int, ...]:
        """Positions masked when scoring position ``p``: ``p``, and with ``word-l2r`` the later
        pieces of its word."""
        if self.pll == "token" or words[p] is None:
            return (p,)
        return (p, *(q for q in targets if q > p and words[q] == words[p]))

    # ------------------------------------------------------------------ scoring

    def token_scores(self, texts: Sequence[str], *, progress: bool = False) -> list[np.ndarray]:
        """Per scored token of each text, its log-probability (natural log).

        Args:
            texts: the sentences.
            progress: show a tqdm bar over forward passes on stderr.

        Returns:
            One float32 array per text, in text order: for a masked LM one entry per
            non-special token (its PLL term), for a causal LM one per token after the first.

        Raises:
            ValueError: a text with no token to score, or holding a lone surrogate.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        if not texts:
            return []
        encoded = self._encode(texts)
        if self.kind == "masked":
            return self._masked_scores(encoded, progress)
        return self._causal_scores(encoded, progress)

    def score(
        self, texts: Sequence[str], *, reduction: str = "mean", progress: bool = False
    ) -> np.ndarray:
        """Plausibility of each text: higher is more plausible.

        Args:
            texts: the sentences (any order; the scores come back in it).
            reduction: ``"mean"`` (default) log-probability per scored token, or ``"sum"``
                (the pseudo-log-likelihood itself for a masked LM, the log-likelihood for a
                causal LM). See the module docstring for why the mean is the default.
            progress: show a tqdm bar over forward passes on stderr.

        Returns:
            ``(len(texts),)`` float32 array of natural-log scores.

        Raises:
            ValueError: an unknown reduction, a text with no token to score, or one holding
                a lone surrogate.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        per_token = self.token_scores(texts, progress=progress)
        reduce = np.mean if reduction == "mean" else np.sum
        return np.array([reduce(t, dtype=np.float64) for t in per_token], dtype=np.float32)

    def _masked_scores(self, encoded: list[_Encoded], progress: bool) -> list[np.ndarray]:
        import torch

        tokenizer, model = self._load()
        mask_id = tokenizer.mask_token_id
        # One job per (text, scored token): the text with that token (and its word's later
        # pieces) masked. Jobs run longest first so a batch holds similar lengths.
        jobs = [(t, j) for t, e in enumerate(encoded) for j in range(len(e.targets))]
        jobs.sort(key=lambda job: -len(encoded[job[0]].ids))
        out = [np.zeros(len(e.targets), dtype=np.float32) for e in encoded]
        for batch in self._batches(jobs, progress):
            rows = [encoded[t] for t, _ in batch]
            ids, attention = self._pad([e.ids for e in rows])  # (B, T) each
            positions = torch.tensor([rows[b].targets[j] for b, (_, j) in enumerate(batch)])
            truth = ids[torch.arange(len(batch)), positions].clone()  # (B,)
            for b, (_, j) in enumerate(batch):
                ids[b, list(rows[b].masks[j])] = mask_id
            logits = model(
                input_ids=ids.to(self.device), attention_mask=attention.to(self.device)
            ).logits  # (B, T, V)
            picked = logits[
                torch.arange(len(batch), device=logits.device), positions.to(logits.device)
            ]
            log_probs = picked.float().log_softmax(-1)  # (B, V)
            values = log_probs.gather(1, truth.to(log_probs.device)[:, None])[:, 0].cpu().numpy()
            for (t, j), value in zip(batch, values, strict=True):
                out[t][j] = value
        return out

    def _causal_scores(self, encoded: list[_Encoded], progress: bool) -> list[np.ndarray]:
        _, model = self._load()
        order = sorted(range(len(encoded)), key=lambda t: -len(encoded[t].ids))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(encoded)
        for batch in self._batches(order, progress):
            ids, attention = self._pad([encoded[t].ids for t in batch])  # (B, T) each
            logits = model(
                input_ids=ids.to(self.device), attention_mask=attention.to(self.device)
            ).logits  # (B, T, V)
            log_probs = logits[:, :-1].float().log_softmax(-1)  # (B, T-1, V): predicts 1..T-1
            values = log_probs.gather(2, ids[:, 1:, None].to(log_probs.device))[..., 0]  # (B, T-1)
            values = values.cpu().numpy()
            for b, t in enumerate(batch):
                out[t] = values[b, : len(encoded[t].ids) - 1].astype(np.float32)
        return out

    def _pad(self, sequences: list[list[int]]) -> tuple[Any, Any]:
        """Right-padded ``(ids, attention_mask)`` tensors of shape ``(B, T)``."""
        import torch

        pad = self._tokenizer.pad_token_id
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), 0 if pad is None else pad, dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        for b, sequence in enumerate(sequences):
            ids[b, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention[b, : len(sequence)] = 1
        return ids, attention

    def _batches(self, items: list[Any], progress: bool):
        """``items`` in chunks of ``batch_size``, under inference mode, with a progress bar."""
        import torch
        from tqdm import tqdm

        starts = range(0, len(items), self.batch_size)
        bar = tqdm(starts, desc=f"lm score ({self.kind})", disable=not progress, unit=" batch")
        with torch.inference_mode():
            for start in bar:
                yield items[start : start + self.batch_size]
