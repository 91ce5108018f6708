"""unimo_kit: UNIMO (Li et al., ACL 2021) as a data toolkit plus trainer.

Stages, each a subpackage with a library API and a ``unimo`` subcommand:

- :mod:`unimo_kit.data` — records, readers and the synthetic world (the embedded default);
- :mod:`unimo_kit.rewrite` — scene-graph parsing and typed text rewrites;
- :mod:`unimo_kit.index` — FAISS retrieval indexes and mining of CMCL positives and negatives;
- :mod:`unimo_kit.features` — visual token extraction;
- :mod:`unimo_kit.model` and :mod:`unimo_kit.train` — model, losses, trainer;
- :mod:`unimo_kit.eval` — retrieval, compositional, captioning and VQA evaluation.

Importing this package is cheap: torch, spaCy, faiss and open_clip load inside the functions
that need them. Offline model resolution lives in :mod:`unimo_kit.resources`.
"""

__version__ = "0.1.0"
