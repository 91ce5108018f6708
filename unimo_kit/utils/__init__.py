"""Small shared helpers: JSONL I/O with per-record errors, atomic and resumable writes,
sharding, deterministic seeds, rank-order selection and progress bars. Nothing here imports
torch."""

from unimo_kit.utils.jsonl import (
    ErrorReport,
    RecordError,
    ResumableJsonlWriter,
    atomic_write,
    count_lines,
    iter_jsonl,
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
    "first_per_group",
    "iter_jsonl",
    "parse_shard",
    "seed_everything",
]
