"""The ``index`` stage: FAISS retrieval indexes over texts and images, and mining of CMCL
positives (related texts and images) and hard negatives (captions of neighbouring images).

Free functions over numpy, in the faiss-contrib manner::

    from unimo_kit.index import build_index, search, exact_search, recall_at_k
    index = build_index(xb, index_type="auto", metric="ip", max_memory="4G")
    D, I = search(index, xq, k=10)
    recall_at_k(I, exact_search(xq, xb, k=10)[1])

Index folders on disk (``indexes/README.md``) and mining::

    from unimo_kit.index import BuildConfig, build, IndexStore, mine
    build(BuildConfig(input="texts.jsonl", kind="texts", encoder="st:all-MiniLM-L6-v2"),
          "indexes/texts")
    IndexStore.open("indexes/texts").search_texts(["a red circle"], k=5)

Embed once, index many: ``embed(config, "emb/texts")`` writes an embedding store, and
``build(replace(config, index_type="ivfpq", embeddings="emb/texts"), "indexes/texts-pq")``
reads it (docs/formats.md).

Importing this package loads numpy only; faiss, torch and the encoders load on first use.
"""

from unimo_kit.index.build import (
    BuildConfig,
    InputChangedError,
    build,
    embed,
    input_changed,
    merge_indexes,
    train_quantizer,
)
from unimo_kit.index.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    EncodedImages,
    Encoder,
    EncoderError,
    load_encoder,
    register_encoder,
)
from unimo_kit.index.factory import (
    IndexPlan,
    RecallProbe,
    build_index,
    exact_search,
    plan_index,
    recall_at_k,
    search,
    tune_search_params,
)
from unimo_kit.index.mine import (
    MineConfig,
    Miner,
    MineSettingsError,
    build_caption_index,
    mine,
    mine_with_captions,
)
from unimo_kit.index.store import IndexStore, IndexStoreError

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "BuildConfig",
    "EncodedImages",
    "Encoder",
    "EncoderError",
    "IndexPlan",
    "IndexStore",
    "IndexStoreError",
    "InputChangedError",
    "MineConfig",
    "MineSettingsError",
    "Miner",
    "RecallProbe",
    "build",
    "build_caption_index",
    "build_index",
    "embed",
    "exact_search",
    "input_changed",
    "load_encoder",
    "merge_indexes",
    "mine",
    "mine_with_captions",
    "plan_index",
    "recall_at_k",
    "register_encoder",
    "search",
    "train_quantizer",
    "tune_search_params",
]
