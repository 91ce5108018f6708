"""Image captioning: generate with the model's seq2seq head, score with the COCO caption metrics.

Metrics come from ``pycocoevalcap`` (the COCO caption evaluation code): BLEU-1..4, METEOR
(needs Java: skipped with a note when ``java`` is not on PATH), ROUGE-L and CIDEr (CIDEr-D as
pycocoevalcap computes it: sigma 6, clipped tf-idf, x10). Texts are tokenised first: with the
Stanford PTB tokenizer pycocoevalcap ships (``tokenizer="ptb"``, Java), or with
:func:`simple_tokenize` (lower case, punctuation dropped; no Java). ``"auto"`` picks PTB when Java
is present.

References come from a ``pairs.jsonl`` file (each image's captions) or a COCO captions JSON.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w\s']|_")


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (PTB tokenizer, METEOR)."""
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    """Lower-case, drop punctuation (as the PTB tokenizer setup of the COCO evaluation does),
    split on white space and join with single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _tokenize(texts: Mapping[str, Sequence[str]], tokenizer: str) -> dict[str, list[str]]:
    if tokenizer == "simple":
        return {k: [simple_tokenize(t) for t in v] for k, v in texts.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": t} for t in v] for k, v in texts.items()})


def caption_metrics(
    hypotheses: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    tokenizer: str = "auto",
    meteor: str = "auto",
) -> dict[str, Any]:
    """Corpus-level caption metrics.

    Args:
        hypotheses: image id -> generated caption.
        references: image id -> reference captions (the same ids).
        tokenizer: ``"auto"``, ``"ptb"`` (Java) or ``"simple"``.
        meteor: ``"auto"`` (when Java is present), ``"yes"`` or ``"no"``.

    Returns:
        ``{"bleu1".."bleu4", "meteor" (or absent), "rouge_l", "cider", "num_images",
        "tokenizer", "notes": [...]}``; scores in [0, 1] except CIDEr (0..10).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(hypotheses) != set(references):
        missing = sorted(set(references) ^ set(hypotheses))[:5]
        raise ValueError(f"hypotheses and references cover different images, e.g. {missing}")
    if not hypotheses:
        raise ValueError("no captions to score")
    notes = []
    java = java_available()
    if tokenizer == "auto":
        tokenizer = "ptb" if java else "simple"
        if not java:
            notes.append("java not found: simple tokenizer used instead of PTB")
    res = _tokenize({k: [v] for k, v in hypotheses.items()}, tokenizer)
    gts = _tokenize(references, tokenizer)
    check_references(gts, references)
    # an empty hypothesis would trip pycocoevalcap's asserts: score it as one unknown word
    res = {k: [v[0] if v[0].strip() else "<empty>"] for k, v in res.items()}
    out: dict[str, Any] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, value in enumerate(bleu, start=1):
        out[f"bleu{n}"] = float(value)
    use_meteor = meteor == "yes" or (meteor == "auto" and java)
    if use_meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        out["meteor"] = float(Meteor().compute_score(gts, res)[0])
    elif meteor == "auto":
        notes.append("METEOR skipped: java not found")
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    out["num_images"] = len(hypotheses)
    out["tokenizer"] = tokenizer
    out["notes"] = notes
    return out


def check_references(
    tokenised: Mapping[str, Sequence[str]],
    references: Mapping[str, Sequence[str]],
    images: Mapping[str, str] | None = None,
) -> None:
    """Raise a one-line ``ValueError`` naming the first image none of whose references has a
    word after tokenisation (e.g. only ``"..."``): it cannot be scored, and CIDEr would crash.

    Args:
        tokenised: image id -> tokenised references.
        references: image id -> the references as given (shown in the message).
        images: image id -> image path, to name the file too.
    """
    bad = [k for k, refs in tokenised.items() if not any(r.strip() for r in refs)]
    if bad:
        first = bad[0]
        path = f" ({images[first]})" if images and first in images else ""
        more = f" (and {len(bad) - 1} more image(s))" if len(bad) > 1 else ""
        raise ValueError(
            f"image {first!r}{path}: no reference caption has a word after tokenisation "
            f"{list(references[first])!r}{more}"
        )


def load_references(
    path: str | os.PathLike,
    *,
    images_root: str | os.PathLike | None = None,
    max_images: int | None = None,
    strict: bool = False,
    on_error: Any = None,
) -> list[tuple[str, str, list[str]]]:
    """``(image id, image path, captions)`` from ``pairs.jsonl`` or a COCO captions ``.json``."""
    from unimo_kit.data.coco import read_coco
    from unimo_kit.data.readers import read_pairs

    if str(path).endswith(".json"):
        records = read_coco(path, images_root=images_root, strict=strict, on_error=on_error)
    else:
        records = read_pairs(path, strict=strict, on_error=on_error)
    out = []
    for record in records:
        if max_images is not None and len(out) >= max_images:
            break
        out.append((record.id, record.image, list(record.captions)))
    return out


#: more than this share of empty generated captions is reported as a failed captioning run
EMPTY_CAPTIONS_WARN = 0.5


def empty_caption_warning(captions: Sequence[str]) -> str | None:
    """A one-line warning when most generated ``captions`` are empty, else ``None``.

    After a short run the seq2seq head often emits ``[SEP]`` first, so every caption is ``""``
    and BLEU/CIDEr read 0.0000, which looks like a score rather than a failure.

    Args:
        captions: the generated captions.

    Returns:
        The warning (naming how many of how many were empty) or ``None``.
    """
    empty = sum(not c.strip() for c in captions)
    if not captions or empty <= EMPTY_CAPTIONS_WARN * len(captions):
        return None
    return (
        f"{empty} of {len(captions)} generated captions are empty: the scores below measure "
        "no output (the seq2seq head was trained too little, or not at all)"
    )


def generate_captions(
    model: Any,
    images: Sequence[str],
    *,
    features: Any = None,
    extractor: str | Any = None,
    num_beams: int = 1,
    max_length: int = 20,
    batch_size: int = 32,
    progress: bool = True,
) -> list[str]:
    """Captions for image files with a unimo model's seq2seq head.

    Args:
        model: a loaded :class:`unimo_kit.model.UnimoModel`.
        images: image paths.
        features: a features store (looked up by path, then file stem) or ``None`` to extract
            with ``extractor`` (see :class:`~unimo_kit.eval.scorers.UnimoScorer`).
        num_beams: 1 = greedy, k > 1 = beam search.
        max_length: most generated word pieces.

    Returns:
        One decoded caption per image.
    """
    import torch
    from tqdm import tqdm

    from unimo_kit.eval.scorers import UnimoScorer

    scorer = UnimoScorer(model, features, extractor=extractor, batch_size=batch_size)
    model = scorer.model
    out: list[str] = []
    steps = range(0, len(images), batch_size)
    for start in tqdm(steps, desc="captioning", unit="batch", disable=not progress):
        feats, boxes, mask = scorer.visual_tokens(list(images[start : start + batch_size]))
        ids = model.generate(
            torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
            torch.from_numpy(boxes),
            torch.from_numpy(mask),
            max_length=max_length,
            num_beams=num_beams,
        )
        out.extend(scorer.tokenizer.decode(seq, skip_special_tokens=True) for seq in ids)
    return out


def evaluate_captioning(
    checkpoint: str | os.PathLike,
    references_path: str | os.PathLike,
    *,
    features: Any = None,
    extractor: str | None = None,
    num_beams: int = 1,
    max_length: int = 20,
    max_images: int | None = None,
    images_root: str | os.PathLike | None = None,
    tokenizer: str = "auto",
    meteor: str = "auto",
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate captions for a test set and score them.

    Returns:
        :func:`caption_metrics` plus ``task``, ``data``, ``scorer``, ``num_beams`` and
        ``predictions`` (``[{"id", "caption", "references"}]``, in input order).
    """
    from unimo_kit.eval.errors import load_checkpoint_checked
    from unimo_kit.eval.scorers import run_extractor
    from unimo_kit.resources import torch_device

    refs = load_references(references_path, images_root=images_root, max_images=max_images)
    if not refs:
        raise ValueError(f"{references_path}: no images with reference captions")
    # before the (slow) generation; the metric's own tokenizer checks again
    check_references(
        {i: [simple_tokenize(c) for c in captions] for i, _, captions in refs},
        {i: captions for i, _, captions in refs},
        {i: image for i, image, _ in refs},
    )
    model = load_checkpoint_checked(checkpoint, device=torch_device(device))
    if features is None and extractor is None:
        extractor = run_extractor(checkpoint)
    captions = generate_captions(
        model,
        [image for _, image, _ in refs],
        features=features,
        extractor=extractor,
        num_beams=num_beams,
        max_length=max_length,
        batch_size=batch_size,
        progress=progress,
    )
    hyps = {image_id: caption for (image_id, _, _), caption in zip(refs, captions, strict=True)}
    metrics = caption_metrics(hyps, {i: c for i, _, c in refs}, tokenizer=tokenizer, meteor=meteor)
    metrics["empty_captions"] = sum(not c.strip() for c in captions)
    warning = empty_caption_warning(captions)
    if warning:
        logger.warning("%s: %s", checkpoint, warning)
        metrics["notes"] = [*metrics.get("notes", []), warning]
    predictions = [
        {"id": i, "caption": c, "references": r}
        for (i, _, r), c in zip(refs, captions, strict=True)
    ]
    return {
        "task": "caption",
        "data": str(references_path),
        "scorer": f"unimo:{checkpoint}",
        "num_beams": num_beams,
        **metrics,
        "predictions": predictions,
    }


# ------------------------------------------------------------------------- batch task


def _run_task(run: Any) -> dict[str, Any]:
    """The batch task: :func:`evaluate_captioning` of the checkpoint (predictions dropped)."""
    entry, opts = run.checkpoint, run.options
    result = evaluate_captioning(
        entry.path,
        run.task.data,
        features=entry.features,
        extractor=entry.extractor,
        num_beams=int(opts.get("beams", 1)),
        max_length=int(opts.get("max_length", 20)),
        max_images=opts.get("max_images"),
        images_root=run.task.images,
        meteor=opts.get("meteor", "auto"),
        tokenizer=opts.get("tokenizer", "auto"),
        device=run.device,
        progress=False,
    )
    result.pop("predictions", None)
    return result


def _task() -> Any:
    from unimo_kit.eval.registry import EvalTask, Option

    return EvalTask(
        name="caption",
        run=_run_task,
        options={
            "beams": Option.positive_int(),
            "max_length": Option.positive_int(),
            "max_images": Option.positive_int(optional=True),
            "meteor": Option.one_of("auto", "yes", "no"),
            "tokenizer": Option.one_of("auto", "ptb", "simple"),
        },
        metrics=("bleu4", "meteor", "rouge_l", "cider"),
        needs_checkpoint=lambda options: True,
        uses_scorer=False,
    )


TASK = _task()
