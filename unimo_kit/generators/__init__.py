"""Hard negatives for other trainers: datasets, a collate and an exporter for any model.

>>> import open_clip
>>> from torch.utils.data import DataLoader
>>> from unimo_kit.generators import HardNegativeDataset
>>> ds = HardNegativeDataset("pairs.jsonl", "rewrites.jsonl", "retrieved.jsonl",
...                          transform=preprocess, tokenizer=open_clip.get_tokenizer("ViT-B-32"),
...                          num_negatives=4, type_mix={"swap-att": 1, "replace-obj": 1})
>>> batch = next(iter(DataLoader(ds, batch_size=32, shuffle=True, collate_fn=ds.collate)))
>>> batch["images"].shape, batch["texts"].shape, batch["negatives"].shape
(torch.Size([32, 3, 224, 224]), torch.Size([32, 77]), torch.Size([32, 4, 77]))

- :class:`HardNegativeDataset` (map-style) over ``pairs.jsonl`` + ``rewrites.jsonl`` +
  ``retrieved.jsonl``, rewriting on the fly when there is no ``rewrites.jsonl``;
- :class:`ShardedIterable`: any map-style dataset split over ranks and DataLoader workers;
- :class:`WebDatasetHardNegatives` over the tar shards of :func:`export_shards` (``unimo export``);
- :func:`collate_items`, :func:`flatten_columns`, :func:`as_tokenizer`.

See docs/generators.md. Names resolve lazily (torch loads on first use).
"""

from __future__ import annotations

from unimo_kit.utils.lazy import lazy_exports

_EXPORTS = {
    "HardNegativeDataset": "unimo_kit.generators.dataset",
    "ShardedIterable": "unimo_kit.generators.shards",
    "WebDatasetHardNegatives": "unimo_kit.generators.shards",
    "ItemBuilder": "unimo_kit.generators.items",
    "choose_by_type": "unimo_kit.generators.items",
    "collate_items": "unimo_kit.generators.items",
    "flatten_columns": "unimo_kit.generators.items",
    "SENTENCE": "unimo_kit.generators.items",
    "RETRIEVED": "unimo_kit.generators.items",
    "TextTokenizer": "unimo_kit.generators.tokenize",
    "as_tokenizer": "unimo_kit.generators.tokenize",
    "export_shards": "unimo_kit.generators.export",
    "ExportSummary": "unimo_kit.generators.export",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
