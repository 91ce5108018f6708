"""Encoder specs: one string names an encoder (stored with every index so queries use the
same one), ``PREFIX:REST`` with the prefix picking a factory.

Other prefixes are added with :func:`register_encoder`::

    register_encoder("mine", lambda rest, device: MyEncoder(rest, device=device))
    encoder = load_encoder("mine:some-model")
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from unimo_kit.encoders.base import Encoder, EncoderError

DEFAULT_TEXT_ENCODER = "st:all-MiniLM-L6-v2"
DEFAULT_IMAGE_ENCODER = "timm:tf_efficientnet_lite0"

EncoderFactory = Callable[[str, "str | None"], Encoder]


def _st(rest: str, device: str | None) -> Encoder:
    from unimo_kit.encoders.st import SentenceTransformerEncoder

    return SentenceTransformerEncoder(rest, device=device)


def _timm(rest: str, device: str | None) -> Encoder:
    from unimo_kit.encoders.cnn import TimmImageEncoder

    return TimmImageEncoder(rest, device=device)


def _features(rest: str, device: str | None) -> Encoder:
    from unimo_kit.encoders.features import FeatureStoreEncoder

    return FeatureStoreEncoder(rest, device=device)


def _open_clip(rest: str, device: str | None) -> Encoder:
    from unimo_kit.encoders.clip import OpenClipEncoder

    return OpenClipEncoder(rest, device=device)


def _unimo(rest: str, device: str | None) -> Encoder:
    from unimo_kit.encoders.unimo import UnimoEncoder

    return UnimoEncoder(rest, device=device)


_FACTORIES: dict[str, EncoderFactory] = {
    "st": _st,
    "timm": _timm,
    "features": _features,
    "open_clip": _open_clip,
    "unimo": _unimo,
}
_LOCK = threading.Lock()


def register_encoder(prefix: str, factory: EncoderFactory) -> None:
    """Make ``load_encoder("PREFIX:REST")`` call ``factory(REST, device)``.

    Args:
        prefix: the part before the first ``:`` (e.g. ``"unimo"``).
        factory: builds an :class:`Encoder` whose ``spec`` is ``"PREFIX:REST"``.

    Raises:
        EncoderError: an empty prefix or one holding ``:``.
    """
    if not prefix or ":" in prefix:
        raise EncoderError(f"invalid encoder prefix {prefix!r}")
    with _LOCK:
        _FACTORIES[prefix] = factory
        _load_cached.cache_clear()


def encoder_prefixes() -> list[str]:
    """The registered spec prefixes."""
    return sorted(_FACTORIES)


def split_spec(spec: str) -> tuple[str, str]:
    """``"st:all-MiniLM-L6-v2"`` -> ``("st", "all-MiniLM-L6-v2")``, checking the prefix.

    Raises:
        EncoderError: no ``PREFIX:`` or an unknown prefix.
    """
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise EncoderError(
            f"invalid encoder spec {spec!r}: expected PREFIX:NAME with PREFIX one of "
            f"{', '.join(encoder_prefixes())} (e.g. {DEFAULT_TEXT_ENCODER})"
        )
    if prefix not in _FACTORIES:
        raise EncoderError(
            f"unknown encoder prefix {prefix!r} in {spec!r}; known: {', '.join(encoder_prefixes())}"
            " (register others with unimo_kit.encoders.register_encoder)"
        )
    return prefix, rest


def load_encoder(spec: str, device: str | None = None) -> Encoder:
    """The encoder named by ``spec`` (loaded once per process and device).

    Args:
        spec: ``PREFIX:REST`` (see :mod:`unimo_kit.encoders`).
        device: torch device (default: cuda when visible, else cpu).

    Returns:
        The shared :class:`Encoder` instance of that spec and device.
    """
    split_spec(spec)
    return _load_cached(spec, device)


@functools.lru_cache(maxsize=8)
def _load_cached(spec: str, device: str | None) -> Encoder:
    prefix, rest = split_spec(spec)
    encoder = _FACTORIES[prefix](rest, device)
    encoder.spec = spec
    return encoder
