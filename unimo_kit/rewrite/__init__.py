"""Text rewriting for cross-modal contrastive learning: scene-graph parsing, typed hard
negatives, meaning-preserving positives, TF-IDF sentence negatives and the ``unimo rewrite``
stage (see ``docs/rewrite.md``).

>>> from unimo_kit.rewrite import SceneGraphParser, Vocabulary, Rewriter
>>> parser = SceneGraphParser()
>>> graphs = list(parser.parse_many(captions))
>>> rewriter = Rewriter(Vocabulary.build(graphs), per_type=1, seed=0)
>>> rewriter.negatives(captions[0], graphs[0], key="img-1#0")
[{'type': 'replace-att', 'text': 'a green circle left of a blue square', 'edits': [...]}, ...]

Importing this package loads neither spaCy nor torch; names resolve lazily.
"""

from __future__ import annotations

from unimo_kit.utils.lazy import lazy_exports

_EXPORTS = {
    "SceneGraphParser": "unimo_kit.rewrite.parser",
    "Rewriter": "unimo_kit.rewrite.negatives",
    "Negative": "unimo_kit.rewrite.negatives",
    "NEGATIVE_TYPES": "unimo_kit.rewrite.negatives",
    "Vocabulary": "unimo_kit.rewrite.vocab",
    "make_positives": "unimo_kit.rewrite.positives",
    "POSITIVE_TYPES": "unimo_kit.rewrite.positives",
    "apply_edits": "unimo_kit.rewrite.edits",
    "Edit": "unimo_kit.rewrite.edits",
    "tfidf_negatives": "unimo_kit.rewrite.tfidf",
    "TfidfNeighbours": "unimo_kit.rewrite.tfidf",
    "rewrite_file": "unimo_kit.rewrite.pipeline",
    "RewriteConfig": "unimo_kit.rewrite.pipeline",
    "RewriteSummary": "unimo_kit.rewrite.pipeline",
    "caption_problem": "unimo_kit.rewrite.pipeline",
    "RewriteDataset": "unimo_kit.rewrite.dataset",
    "BackTranslator": "unimo_kit.rewrite.backtranslate",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
