"""On-the-fly rewrites inside ``DataLoader`` workers.

:class:`RewriteDataset` wraps captions (a ``pairs.jsonl`` path, a list of
:class:`~unimo_kit.data.records.PairRecord` or pair dicts, or any sequence of ``(id, caption)``)
and makes hard negatives and positives when an item is fetched, so a training run needs no
offline ``unimo rewrite`` pass. It is picklable; the spaCy parser loads lazily in each worker.
Outputs are deterministic per ``(seed, id, epoch)``: epoch 0 gives exactly the negatives of
``unimo rewrite`` with the same vocabulary and seed, and :meth:`RewriteDataset.set_epoch`
draws fresh ones per epoch (call it before creating the epoch's iterator; with
``persistent_workers=True`` the workers keep the epoch they were created with).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from unimo_kit.data.records import caption_id
from unimo_kit.rewrite.negatives import Rewriter
from unimo_kit.rewrite.vocab import Vocabulary


class RewriteDataset(Dataset):
    """Captions with negatives and positives made on the fly.

    Args:
        source: ``pairs.jsonl`` path, a list of ``PairRecord`` / pair dicts (every caption
            becomes an item, id ``"<pair_id>#<caption_index>"``), a list of ``(id, caption)``
            tuples / ``{"id", "caption"}`` dicts, or any map-style dataset whose items are
            ``(id, caption, ...)`` or dicts with ``id`` and ``caption``/``text`` (read lazily;
            dict fields are passed through, extra tuple fields come back under ``"item"``).
        vocab: replacement vocabulary; ``None`` builds one by parsing every caption now.
        types: negative types (default: all).
        per_type: negatives per type.
        seed: global seed.
        positives: also make graph positives (``inverse-rel``, ``there-is``, ...).
        spacy_model: spaCy pipeline name or path for the parser.
        reference: evidence beside the corpus, as ``RewriteConfig.reference``: ``"builtin"``
            (the shipped table), a file, a :class:`Vocabulary`, or ``None``.
        roundtrip: keep only rewrites whose re-parse is the intended graph, as the stage
            does (epoch 0 then gives the stage's negatives).
        spares: candidates per wanted negative, as the stage's ``spares``.

    Items are dicts: ``id``, ``caption``, ``negatives`` (texts), ``negative_types``,
    ``positives`` (texts), ``positive_types``.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[Any],
        vocab: Vocabulary | None = None,
        *,
        types: Sequence[str] | None = None,
        per_type: int = 1,
        seed: int = 0,
        positives: bool = True,
        spacy_model: str | None = None,
        reference: Vocabulary | str | None = "builtin",
        roundtrip: bool = True,
        spares: int = 2,
    ):
        if isinstance(source, (str, os.PathLike, list, tuple)):
            self.items: Any = _flatten(source)  # list of (id, caption)
            self.lazy = False
        else:  # any map-style dataset of (id, caption, ...) or {"id", "caption"|"text", ...}
            self.items, self.lazy = source, True
        self.spacy_model = spacy_model
        self.positives = positives
        self.epoch = 0
        self._parser: Any = None
        if vocab is None:
            captions = (_as_item(self.items[i])[1] for i in range(len(self.items)))
            vocab = Vocabulary.build(self.parser.parse_many(captions))
        if isinstance(reference, str):
            from unimo_kit.rewrite.pipeline import load_reference_option

            reference = load_reference_option(reference)
        self.rewriter = Rewriter(
            vocab, types=types, per_type=per_type, seed=seed, reference=reference, spares=spares
        )
        self.roundtrip = roundtrip

    @property
    def parser(self) -> Any:
        """The scene-graph parser (created on first use in each process)."""
        if self._parser is None:
            from unimo_kit.rewrite.parser import SceneGraphParser

            self._parser = SceneGraphParser(self.spacy_model)
        return self._parser

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_parser"] = None  # each worker loads its own spaCy pipeline
        return state

    def set_epoch(self, epoch: int) -> None:
        """Draw the negatives of ``epoch`` (0 = those of the offline stage)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from unimo_kit.rewrite.negatives import CandidateFilter
        from unimo_kit.rewrite.pipeline import caption_problem
        from unimo_kit.rewrite.positives import make_positives

        entry = self.items[index]
        item_id, caption = _as_item(entry)
        out: dict[str, Any] = {}
        if self.lazy and isinstance(entry, dict):
            out.update(entry)  # pass the wrapped dataset's fields through (image, ...)
        elif self.lazy and isinstance(entry, tuple) and len(entry) > 2:
            out["item"] = entry
        out.update(id=item_id, caption=caption)
        negatives: list[dict[str, Any]] = []
        positives: list[Any] = []
        if caption_problem(caption) is None:
            graph = self.parser.parse(caption)
            key = item_id if self.epoch == 0 else f"{item_id}@epoch{self.epoch}"
            check = CandidateFilter(self.parser.parse_each if self.roundtrip else None)
            candidates = self.rewriter.candidates(caption, graph, key)
            (kept,) = check([candidates], self.rewriter.per_type)
            negatives = [n.to_dict() for n in kept]
            if self.positives:
                made = make_positives(caption, graph)
                (positives,) = check([made], max(1, len(made)), rank=False)
        out["negatives"] = [n["text"] for n in negatives]
        out["negative_types"] = [n["type"] for n in negatives]
        out["positives"] = [p.text for p in positives]
        out["positive_types"] = [p.type for p in positives]
        return out


def _flatten(source: str | os.PathLike | Sequence[Any]) -> list[tuple[str, str]]:
    """``(id, caption)`` items from any supported source."""
    if isinstance(source, (str, os.PathLike)):
        from unimo_kit.utils import iter_jsonl

        source = [record for _, record in iter_jsonl(source)]
    items: list[tuple[str, str]] = []
    for entry in source:
        if isinstance(entry, tuple) and len(entry) == 2:
            items.append((str(entry[0]), entry[1]))
            continue
        record = entry if isinstance(entry, dict) else getattr(entry, "__dict__", {})
        if "captions" in record:
            pair_id = str(record["id"])
            items.extend((caption_id(pair_id, i), c) for i, c in enumerate(record["captions"]))
        elif "caption" in record or "text" in record:
            items.append((str(record["id"]), record.get("caption", record.get("text"))))
        else:
            raise TypeError(f"cannot read captions from {type(entry).__name__}: {entry!r:.80}")
    return items


def _as_item(entry: Any) -> tuple[str, str]:
    """``(id, caption)`` of one entry of a wrapped dataset."""
    if isinstance(entry, tuple) and len(entry) >= 2:
        return str(entry[0]), entry[1]
    if isinstance(entry, dict) and "id" in entry and ("caption" in entry or "text" in entry):
        return str(entry["id"]), entry.get("caption", entry.get("text"))
    raise TypeError(f"expected (id, caption, ...) or a dict with id and caption: {entry!r:.80}")
