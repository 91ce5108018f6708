"""One encoder layer for every stage: texts and images into vectors, behind one contract.

The contract is sentence-transformers' ``encode`` (:mod:`unimo_kit.encoders.base`): a ``str``
or a list in; batches sorted by length and the original order restored; no gradients;
``float32`` numpy out, L2-normalised, so inner product is cosine similarity. The index stage
builds and searches with these encoders, and evaluation scores with them (its UNIMO-specific
scores live in :mod:`unimo_kit.eval.scorers`).

    >>> from unimo_kit.encoders import load_encoder  # doctest: +SKIP
    >>> encoder = load_encoder("st:all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> encoder.encode_texts(["a red circle", "two squares"]).shape  # doctest: +SKIP
    (2, 384)

An encoder is named by one string, stored with every index so queries use the same one:

==============================  =========================================================
``st:NAME_OR_PATH``             sentence-transformers (``st:all-MiniLM-L6-v2`` ships
                                offline; any hub name or local folder; CLIP models embed
                                images too)
``timm:NAME[:WEIGHTS]``         timm image CNN, global-pooled features;
                                ``timm:tf_efficientnet_lite0`` loads the packaged ImageNet
                                weights; ``WEIGHTS`` = ``random`` or a state-dict path
``open_clip:MODEL:TAG_OR_PATH`` open_clip text and image towers (one space for both)
``unimo:CHECKPOINT``            a unimo_kit checkpoint: the CMCL embeddings ([CLS] of the
                                text alone, [IMG] of the image alone; one space for both)
``features:DIR``                images only: a features store's tokens averaged (for effnet
                                stores = ``timm:tf_efficientnet_lite0`` on the uncropped
                                image); no image decoded, no model loaded
==============================  =========================================================

Other prefixes are added with :func:`register_encoder`. Images are decoded by
:class:`unimo_kit.data.images.ImageLoader`: :meth:`Encoder.encode_images` raises on a missing
or corrupt image, :meth:`Encoder.encode_image_files` skips it and reports which.

Importing this package loads numpy only; each encoder imports its model library when built.
"""

from unimo_kit.encoders.base import (
    IMAGE,
    TEXT,
    EncodedImages,
    Encoder,
    EncoderError,
    EncoderInputError,
    check_texts,
    l2_normalize,
)
from unimo_kit.encoders.registry import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    EncoderFactory,
    encoder_prefixes,
    load_encoder,
    register_encoder,
    split_spec,
)

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "IMAGE",
    "TEXT",
    "EncodedImages",
    "Encoder",
    "EncoderError",
    "EncoderFactory",
    "EncoderInputError",
    "FeatureStoreEncoder",
    "OpenClipEncoder",
    "SentenceTransformerEncoder",
    "TimmImageEncoder",
    "UnimoEncoder",
    "check_texts",
    "encoder_prefixes",
    "l2_normalize",
    "load_encoder",
    "register_encoder",
    "split_spec",
]

_LAZY = {
    "FeatureStoreEncoder": "unimo_kit.encoders.features",
    "OpenClipEncoder": "unimo_kit.encoders.clip",
    "SentenceTransformerEncoder": "unimo_kit.encoders.st",
    "TimmImageEncoder": "unimo_kit.encoders.cnn",
    "UnimoEncoder": "unimo_kit.encoders.unimo",
}


def __getattr__(name: str) -> object:
    """The encoder classes, imported on first use (their modules are light too, but this keeps
    ``import unimo_kit.encoders`` to the contract and the registry)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
