"""The objectives table: one name per pre-training objective, used as the training-config flag,
the loss-weight key and the log key (``{name}_loss``, metrics ``{name}_*``), with what each
needs and which batch kinds feed it.

:class:`~unimo_kit.train.config.TrainConfig` validation, the trainer's ``build_objective`` and
:class:`~unimo_kit.model.objectives.UnimoPretraining` all read :data:`OBJECTIVES`; old spellings
(``paraphrase_rank``, the weight key ``token``) load through :data:`ALIASES`.

Built-in objectives share the forward passes of ``UnimoPretraining`` (CMCL's text and image
passes feed token alignment and paraphrase ranking too), so their code lives there. A new
objective is one file with a loss module and one :func:`register_objective` call::

    class LengthLoss(nn.Module):               # my_objective.py
        def __init__(self, model): ...
        def forward(self, batch, shared):      # -> {"length_loss": ..., "length_acc": ...}
            ...

    register_objective(ObjectiveSpec("length", data=("pairs",), build=LengthLoss))

and is switched on with ``extra_objectives=["length"]`` (weight key ``"length"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

#: Batch kinds an objective can train on (``TrainConfig.batch_pairs`` / ``batch_texts`` /
#: ``batch_images``).
DATA_KINDS = ("pairs", "texts", "images")

#: What an objective may need besides other objectives: a capability of the run, spelt per
#: layer by the caller of :func:`check_objectives`.
CAPABILITIES = {
    "hard_negatives": "each pair's rewritten hard negatives in the batch",
    "matching_head": "a model with a matching head",
}


@dataclass(frozen=True)
class ObjectiveSpec:
    """One row of the objectives table.

    Args:
        name: config flag, loss-weight key and log-key prefix (``{name}_loss``).
        data: batch kinds that feed it (a subset of :data:`DATA_KINDS`).
        needs: other objectives (their names) or :data:`CAPABILITIES` it needs.
        aliases: old spellings of the flag or weight key, still read.
        build: extension objectives only: ``build(model) -> nn.Module`` whose
            ``forward(batch, shared)`` returns ``{f"{name}_loss": ..., metrics...}``
            (``shared``: the CMCL encodings when CMCL ran, see ``UnimoPretraining``);
            ``None`` for the built-ins, computed by ``UnimoPretraining``'s own passes.
        doc: one line on what it trains.
    """

    name: str
    data: tuple[str, ...]
    needs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    build: Callable[[nn.Module], nn.Module] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"objective name must be an identifier, got {self.name!r}")
        unknown = set(self.data) - set(DATA_KINDS)
        if unknown or not self.data:
            raise ValueError(f"{self.name}: data must be a non-empty subset of {DATA_KINDS}")


#: The built-in objectives, in the order their losses are logged.
BUILTIN_OBJECTIVES: tuple[ObjectiveSpec, ...] = (
    ObjectiveSpec("cmcl", ("pairs",), doc="cross-modal contrastive learning (UNIMO §2.2)"),
    ObjectiveSpec(
        "token_alignment",
        ("pairs",),
        needs=("cmcl",),
        aliases=("token",),
        doc="each word matched to its best image region (FILIP), on the CMCL passes",
    ),
    ObjectiveSpec(
        "itm",
        ("pairs",),
        needs=("matching_head",),
        doc="image-text matching head on the joint encoding",
    ),
    ObjectiveSpec(
        "paraphrase",
        ("pairs",),
        needs=("cmcl", "hard_negatives"),
        aliases=("paraphrase_rank",),
        doc="each caption's paraphrases ranked above its hard negatives, on the CMCL text pass",
    ),
    ObjectiveSpec("mlm", ("pairs", "texts"), doc="masked language modelling (BERT)"),
    ObjectiveSpec("seq2seq", ("pairs", "texts"), doc="UniLM seq2seq generation"),
    ObjectiveSpec("mrp", ("pairs", "images"), doc="masked region prediction (UNITER)"),
)

#: Every known objective by name: the built-ins and whatever :func:`register_objective` added.
OBJECTIVES: dict[str, ObjectiveSpec] = {spec.name: spec for spec in BUILTIN_OBJECTIVES}

#: Old spelling -> objective name.
ALIASES: dict[str, str] = {alias: s.name for s in BUILTIN_OBJECTIVES for alias in s.aliases}


def register_objective(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add an extension objective to the table (idempotent for the same spec).

    Args:
        spec: its row; ``spec.build`` must be given.

    Returns:
        ``spec``.

    Raises:
        ValueError: no ``build``, or the name (or an alias) is taken by another objective.
    """
    if spec.build is None:
        raise ValueError(f"objective {spec.name!r}: an extension objective needs build=")
    for name in (spec.name, *spec.aliases):
        taken = OBJECTIVES.get(ALIASES.get(name, name))
        if taken is not None and taken != spec:
            raise ValueError(f"objective name {name!r} is taken by {taken.name!r}")
    OBJECTIVES[spec.name] = spec
    ALIASES.update(dict.fromkeys(spec.aliases, spec.name))
    return spec


def canonical(name: str) -> str:
    """The objective name for ``name`` or an old spelling of it (unknown names unchanged)."""
    return ALIASES.get(name, name)


def canonical_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Loss weights keyed by objective name (old keys such as ``"token"`` renamed).

    Raises:
        ValueError: a key names no objective, or two keys name the same one.
    """
    weights = dict(weights or {})
    unknown = sorted(k for k in weights if canonical(k) not in OBJECTIVES)
    if unknown:
        raise ValueError(f"unknown loss weights {unknown}; known: {sorted(OBJECTIVES)}")
    out: dict[str, float] = {}
    for key, value in weights.items():
        name = canonical(key)
        if name in out:
            raise ValueError(f"loss weights {key!r} and {name!r} name the same objective")
        out[name] = float(value)
    return out


def check_objectives(
    on: Mapping[str, bool],
    have: Mapping[str, bool],
    spell: Callable[[str], str] = lambda name: f"{name}=True",
) -> None:
    """Refuse an objective switched on without what it needs.

    Args:
        on: objective name -> switched on.
        have: capability (:data:`CAPABILITIES`) -> available.
        spell: how the caller writes a requirement in its message (``"cmcl=true"``).

    Raises:
        ValueError: naming the objective and what it needs.
    """
    for name, enabled in on.items():
        if not enabled:
            continue
        missing = [
            need
            for need in OBJECTIVES[name].needs
            if not (on.get(need, False) if need in OBJECTIVES else have.get(need, False))
        ]
        if missing:
            needs = " and ".join(map(spell, OBJECTIVES[name].needs))
            raise ValueError(
                f"{name} ({OBJECTIVES[name].doc}) needs {needs}; missing: "
                f"{', '.join(map(spell, missing))}"
            )
