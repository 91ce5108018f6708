"""Small shared helpers: JSONL I/O with per-record errors, atomic and resumable writes,
sharding, file fingerprints, deterministic seeds, rank-order selection and progress bars.
Nothing here imports torch."""

from unimo_kit.utils.hashing import file_sha256
from unimo_kit.utils.jsonl import (
    ErrorReport,
    RecordError,
    ResumableJsonlWriter,
    atomic_write,
    count_lines,
    find_lone_surrogate,
    iter_jsonl,
    load_line,
)
from unimo_kit.utils.seeding import derive_seed, seed_everything
from unimo_kit.utils.select import first_per_group
from unimo_kit.utils.shard import Shard, parse_shard

__all__ = [
    "ErrorReport",
    "RecordError",
    "ResumableJsonlWriter",
    "Shard",
    "atomic_write",
    "count_lines",
    "derive_seed",
    "file_sha256",
    "find_lone_surrogate",
    "first_per_group",
    "iter_jsonl",
    "load_line",
    "parse_shard",
    "seed_everything",
]
