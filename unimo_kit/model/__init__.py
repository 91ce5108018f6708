"""The compact UNIMO model (Li et al., ACL 2021, arXiv:2012.15409) and its pre-training losses.

One Transformer (BERT layout, initialised from the packaged all-MiniLM-L6-v2) encodes text
alone, an image alone (visual tokens) or both; UniLM attention masks switch it between
understanding (bidirectional) and generation (seq2seq).

    >>> from unimo_kit.model import create_model, load_tokenizer, UnimoPretraining
    >>> model = create_model("unimo-tiny", visual_feat_dim=16)
    >>> objective = UnimoPretraining(model)   # forward(batch) -> {"cmcl_loss": ..., ...}

This subpackage imports torch.
"""

from unimo_kit.model.config import UnimoConfig
from unimo_kit.model.factory import (
    create_model,
    get_config,
    list_presets,
    load_checkpoint,
    load_tokenizer,
    save_checkpoint,
    unwrap_model,
)
from unimo_kit.model.losses import CMCLLoss, MaskedRegionLoss, MLMLoss, Seq2SeqLoss
from unimo_kit.model.matching import MatchingLoss
from unimo_kit.model.objectives import UnimoPretraining
from unimo_kit.model.paraphrase import ParaphraseRankLoss
from unimo_kit.model.token_alignment import TokenAlignmentLoss, token_similarity
from unimo_kit.model.unimo import UnimoModel

__all__ = [
    "CMCLLoss",
    "MLMLoss",
    "MaskedRegionLoss",
    "MatchingLoss",
    "ParaphraseRankLoss",
    "Seq2SeqLoss",
    "TokenAlignmentLoss",
    "UnimoConfig",
    "UnimoModel",
    "UnimoPretraining",
    "create_model",
    "get_config",
    "list_presets",
    "load_checkpoint",
    "load_tokenizer",
    "save_checkpoint",
    "token_similarity",
    "unwrap_model",
]
