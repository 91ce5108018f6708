"""CLIP fine-tuning with hard negatives on a tiny random open_clip model built in the test."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from unimo_kit.finetune import FinetuneConfig, finetune_clip  # noqa: E402
from unimo_kit.train.checkpoint import list_checkpoints  # noqa: E402


def _config(tiny_clip, pair_data, out, **changes) -> FinetuneConfig:
    pairs, rewrites = pair_data
    settings = dict(
        model=f"open_clip:{tiny_clip}",
        pairs=str(pairs),
        rewrites=str(rewrites) if rewrites else None,
        out=str(out),
        num_negatives=2,
        batch_size=4,
        steps=6,
        lr=1e-3,
        warmup_steps=2,
        save_every=2,
        log_every=1,
        threads=1,
        progress=False,
        device="cpu",
    )
    return FinetuneConfig(**{**settings, **changes})


def _rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_a_few_steps_lower_the_loss(tiny_clip, pair_data, tmp_path):
    result = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "run", steps=40, save_every=40))
    losses = [float(r["loss"]) for r in _rows(tmp_path / "run")]
    assert len(losses) == 40 and all(map(lambda x: x == x, losses))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.7 * first, (first, last)
    assert result.final is not None and (result.final / "open_clip_config.json").is_file()
    saved = json.loads((result.final / "open_clip_config.json").read_text())
    assert saved["model_name"] == "unimo-test-clip" and saved["model_cfg"]["embed_dim"] == 16


def test_same_seed_same_weights_other_seed_other_weights(tiny_clip, pair_data, tmp_path):
    a = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "a", steps=2))
    b = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "b", steps=2))
    c = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "c", steps=2, seed=1))
    wa, wb, wc = _weights(a.final), _weights(b.final), _weights(c.final)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


KILL_SCRIPT = """
import os, signal, sys
import open_clip  # noqa: F401
import unimo_kit.finetune.trainer as trainer
from unimo_kit.finetune import FinetuneConfig, finetune_clip
calls = 0
real = trainer.batch_loss
def dying(*args, **kwargs):
    global calls
    calls += 1
    if calls == 6:  # in step 6: step 4 is checkpointed, step 5 done and lost
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
trainer.batch_loss = dying
finetune_clip(FinetuneConfig(**{config}))
"""


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_to_the_uninterrupted_weights(tiny_clip, pair_data, tmp_path):
    reference = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "ref"))
    config = _config(tiny_clip, pair_data, tmp_path / "run")
    script = KILL_SCRIPT.replace("{config}", repr(config.to_dict()))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, timeout=300)
    assert proc.returncode == -9  # killed by SIGKILL, not finished
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000002", "step-000004"]
    assert not (tmp_path / "run" / "final").exists()
    assert [r["step"] for r in _rows(tmp_path / "run")] == ["1", "2", "3", "4", "5"]

    resumed = finetune_clip(config)  # the same command again
    assert resumed.state.step == 6 and resumed.state.data == reference.state.data
    want, got = _weights(reference.final), _weights(resumed.final)
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key  # bit-exact on CPU
    ref_rows, rows = _rows(tmp_path / "ref"), _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 7)]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
    # a finished run is not trained again
    again = finetune_clip(config)
    assert again.state.step == 6 and again.last_losses == {}


def test_resume_under_another_config_is_refused(tiny_clip, pair_data, tmp_path):
    finetune_clip(_config(tiny_clip, pair_data, tmp_path / "run", steps=4), stop_after=2)
    with pytest.raises(ValueError, match="num_negatives"):
        finetune_clip(_config(tiny_clip, pair_data, tmp_path / "run", steps=4, num_negatives=1))
    done = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "run", steps=4, num_workers=0))
    assert done.state.step == 4 and done.final is not None


def test_negatives_mask_only_real_negatives_join_the_softmax(tiny_clip, pair_data, tmp_path):
    """Pairs with fewer than K negatives: the loss equals NegCLIP written out by hand over the
    real negatives only (padding columns left out)."""
    from unimo_kit.finetune.data import PairBatches, build_dataset
    from unimo_kit.finetune.loss import NegClipLoss
    from unimo_kit.finetune.trainer import batch_loss, load_open_clip

    config = _config(tiny_clip, pair_data, tmp_path / "run", batch_size=8).resolved()
    torch.manual_seed(0)
    model, preprocess, tokenizer, _ = load_open_clip(config.model, "cpu")
    dataset = build_dataset(config, preprocess, tokenizer, 0, 1)
    batch = next(iter(PairBatches(dataset, 8, seed=0)))
    mask = batch["negatives_mask"]  # (B, K)
    assert mask.shape == (8, 2) and 0 < mask.sum() < mask.numel()  # some pairs have < K
    assert (~mask.any(dim=1)).any()  # and some none at all
    out = batch_loss(model, NegClipLoss(), batch, "cpu")

    images = model.encode_image(batch["images"], normalize=True)  # (B, D)
    texts = model.encode_text(batch["texts"], normalize=True)  # (B, D)
    negatives = model.encode_text(batch["negatives"][mask], normalize=True)  # (H, D)
    scale = model.logit_scale.exp()
    per_image = scale * images @ torch.cat([texts, negatives]).T  # (B, B + H)
    per_text = scale * texts @ images.T  # (B, B)
    labels = torch.arange(8)
    want = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
    torch.testing.assert_close(out["clip_loss"], want, rtol=1e-5, atol=1e-5)
    # the rank loss adds softplus(scale * (s(v, w-) - s(v, w))) over the real negatives
    owner = mask.nonzero()[:, 0]
    s_neg = (images[owner] * negatives).sum(-1)
    s_pos = (images[owner] * texts[owner]).sum(-1)
    ranked = batch_loss(model, NegClipLoss(hard_negative_weight=0.5), batch, "cpu")
    rank = F.softplus(scale * (s_neg - s_pos)).mean()
    torch.testing.assert_close(ranked["clip_loss"], want + 0.5 * rank, rtol=1e-5, atol=1e-5)
    # without negatives it is open_clip's ClipLoss
    plain = {**batch, "negatives_mask": torch.zeros_like(mask)}
    clip = open_clip.ClipLoss()(images, texts, scale)
    torch.testing.assert_close(batch_loss(model, NegClipLoss(), plain, "cpu")["clip_loss"], clip)


def test_final_model_scores_in_the_compositional_eval(tiny_clip, pair_data, tmp_path):
    from unimo_kit.eval.compositional import CompositionalExample, evaluate_compositional
    from unimo_kit.eval.scorers import build_scorer

    result = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "run", steps=2))
    scorer = build_scorer(open_clip=str(result.final))  # the folder alone: config + weights
    image = str(tmp_path / "img" / "0.png")
    examples = [
        CompositionalExample("0", image, "swap-att", "a red square left of a blue square",
                             ["a blue square left of a red square"]),
    ]  # fmt: skip
    report = evaluate_compositional(scorer, examples)
    assert report["num_examples"] == 1 and "swap-att" in report["categories"]
    loaded = scorer.model.state_dict()
    trained = _weights(result.final)
    assert all(torch.equal(loaded[k].cpu(), trained[k]) for k in trained)


def test_a_run_starts_from_an_earlier_runs_final_folder(tiny_clip, pair_data, tmp_path):
    """``--model open_clip:OUT/final`` continues from those weights with that architecture."""
    from unimo_kit.finetune.trainer import load_open_clip

    first = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "base", steps=2))
    torch.manual_seed(123)  # a fresh random init would differ from the saved weights
    model, _, _, saved = load_open_clip(f"open_clip:{first.final}", "cpu")
    assert saved["model_cfg"]["embed_dim"] == 16 and model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in _weights(first.final).items())
    again = _config(tiny_clip, pair_data, tmp_path / "more", steps=2)
    again = dataclasses.replace(again, model=f"open_clip:{first.final}")
    assert finetune_clip(again).final is not None


def test_without_negatives_and_without_rewrites(tiny_clip, pair_data, tmp_path):
    """num_negatives 0 is plain CLIP fine-tuning: no rewrites file needed, nothing parsed."""
    pairs, _ = pair_data
    config = _config(tiny_clip, (pairs, None), tmp_path / "run", num_negatives=0, steps=2)
    result = finetune_clip(config)
    assert result.state.step == 2 and "hardneg_acc" not in _rows(tmp_path / "run")[0]


def test_export_shards_train_and_resume_like_the_jsonl_files(tiny_clip, pair_data, tmp_path):
    """Over `unimo export` shards (a stream): a run stopped at step 3 and resumed (the stream
    read up to its position again) ends with the weights of an uninterrupted run."""
    from unimo_kit.generators import HardNegativeDataset, export_shards

    pairs, rewrites = pair_data
    source = HardNegativeDataset(pairs, rewrites, load_images=False)
    export_shards(source, tmp_path / "shards", samples_per_shard=6, progress=False)
    shards = {"pairs": None, "rewrites": None, "shards": str(tmp_path / "shards")}
    reference = finetune_clip(_config(tiny_clip, pair_data, tmp_path / "ref", **shards))
    assert reference.state.data["pairs"]["epoch"] >= 1  # 16 samples, batches of 4: 2 epochs
    config = _config(tiny_clip, pair_data, tmp_path / "run", **shards)
    finetune_clip(config, stop_after=3)
    resumed = finetune_clip(config)
    want, got = _weights(reference.final), _weights(resumed.final)
    assert all(torch.equal(want[k], got[k]) for k in want)
    negatives = [float(r["hardneg_acc"]) for r in _rows(tmp_path / "ref")]
    assert negatives  # the shards carried the negatives


@pytest.mark.parametrize(
    "extra",
    [
        {"rewrites": "r.jsonl"},
        {"split": "train"},
        {"on_the_fly": True},
        {"sentence_negatives": False},
    ],
)
def test_pair_options_with_shards_are_refused_not_ignored(extra):
    """An export already chose its pairs and negatives: options that only shape reading
    pairs.jsonl are an error with shards, not silently dropped."""
    with pytest.raises(ValueError, match=f"{next(iter(extra))} apply to pairs, not to shards"):
        FinetuneConfig(model="open_clip:x", shards="shards/", out="run", **extra)


def test_on_the_fly_and_rewrites_are_not_both():
    with pytest.raises(ValueError, match=r"on_the_fly .* not both"):
        FinetuneConfig(model="open_clip:x", pairs="p.jsonl", rewrites="r.jsonl", on_the_fly=True)
