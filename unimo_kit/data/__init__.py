"""Records, readers and converters for image-text pairs, text corpora and image collections.

Formats (docs/formats.md): ``pairs.jsonl`` (:class:`PairRecord`), ``texts.jsonl``
(:class:`TextRecord`), ``images.jsonl`` (:class:`ImageRecord`). Readers stream and report
malformed records (``FILE:LINE: what was wrong``) without stopping, unless ``strict``::

    from unimo_kit.data import read_pairs, ImageLoader

    loader = ImageLoader()
    for pair in read_pairs("data/pairs.jsonl"):
        image = loader.load(pair.image)  # RGB PIL image, or None if missing/corrupt
    print(loader.stats.summary())

Sources converted to pairs: :func:`read_coco`, :func:`read_karpathy`, :func:`read_csv`,
:func:`read_webdataset`, all behind :func:`convert` (``unimo data convert``).

Importing this package loads no heavy dependency (PIL and tqdm load when used). The
synthetic world is in :mod:`unimo_kit.data.synth` (import it explicitly); scene graphs in
:mod:`unimo_kit.data.scene_graph`.
"""

from unimo_kit.data.coco import read_coco, read_karpathy
from unimo_kit.data.convert import FORMATS, ConvertSummary, convert, iter_source
from unimo_kit.data.csv_pairs import read_csv
from unimo_kit.data.images import ImageError, ImageLoader, ImageStats
from unimo_kit.data.readers import read_images, read_pairs, read_texts, write_records
from unimo_kit.data.records import (
    ImageRecord,
    MemberError,
    PairRecord,
    TextRecord,
    relative_path,
    resolve_path,
)
from unimo_kit.data.webdataset_tar import read_webdataset
from unimo_kit.utils import ErrorReport, RecordError

__all__ = [
    "FORMATS",
    "ConvertSummary",
    "ErrorReport",
    "ImageError",
    "ImageLoader",
    "ImageRecord",
    "ImageStats",
    "MemberError",
    "PairRecord",
    "RecordError",
    "TextRecord",
    "convert",
    "iter_source",
    "read_coco",
    "read_csv",
    "read_images",
    "read_karpathy",
    "read_pairs",
    "read_texts",
    "read_webdataset",
    "relative_path",
    "resolve_path",
    "write_records",
]
