"""The index stage's encoders: :mod:`unimo_kit.encoders`, the one encoder layer of the project
(index and eval both use it). Kept so that ``unimo_kit.index.encoders`` imports keep working."""

from unimo_kit.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    IMAGE,
    TEXT,
    EncodedImages,
    Encoder,
    EncoderError,
    EncoderFactory,
    EncoderInputError,
    encoder_prefixes,
    l2_normalize,
    load_encoder,
    register_encoder,
    split_spec,
)
from unimo_kit.encoders.clip import OpenClipEncoder
from unimo_kit.encoders.cnn import TimmImageEncoder
from unimo_kit.encoders.st import SentenceTransformerEncoder
from unimo_kit.encoders.unimo import UnimoEncoder

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
    "OpenClipEncoder",
    "SentenceTransformerEncoder",
    "TimmImageEncoder",
    "UnimoEncoder",
    "encoder_prefixes",
    "l2_normalize",
    "load_encoder",
    "register_encoder",
    "split_spec",
]
