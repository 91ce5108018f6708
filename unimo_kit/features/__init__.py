"""Visual features: extractors (EfficientNet-Lite0 grid, open_clip ViT patches, imported region
features) and the on-disk features store read by the trainer.

Importing this package loads numpy only; torch, timm and open_clip load when an extractor is built.
"""

from unimo_kit.features.store import FeatureStore, FeatureStoreWriter, VisualFeatures, list_chunks

__all__ = [
    "ExtractionReport",
    "FeatureStore",
    "FeatureStoreWriter",
    "VisualFeatures",
    "build_extractor",
    "extract_features",
    "grid_boxes",
    "list_chunks",
]


def __getattr__(name: str):
    # Lazy: the extraction pipeline pulls in PIL and the data readers.
    if name in ("extract_features", "ExtractionReport"):
        from unimo_kit.features import extract

        return getattr(extract, name)
    if name in ("build_extractor", "grid_boxes"):
        from unimo_kit.features import extractors

        return getattr(extractors, name)
    raise AttributeError(f"module 'unimo_kit.features' has no attribute {name!r}")
