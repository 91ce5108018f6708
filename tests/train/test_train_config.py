"""TrainConfig, presets, overrides and the learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest

from unimo_kit.train import TrainConfig, list_presets, load_config, lr_at, parse_override
from unimo_kit.train.config import resume_differences

ARMS = ("synth-a-cmcl", "synth-b-negatives", "synth-c-retrieval", "synth-d-full")


def test_presets_load_and_the_ablation_arms_differ_only_in_their_flags():
    assert {"tiny", "synth-small", *ARMS} <= set(list_presets())
    arms = [load_config(name) for name in ARMS]
    flags = [
        "rewrite_negatives",
        "sentence_negatives",
        "retrieval_positives",
        "rewrite_positives",
        "mlm",
        "seq2seq",
        "mrp",
    ]
    table = [[getattr(c, f) for f in flags] for c in arms]
    assert table[0] == [False] * 7  # (a) CMCL with in-batch negatives only
    assert table[1] == [True, True] + [False] * 5  # (b) + rewrite hard negatives
    assert table[2] == [True, True, True] + [False] * 4  # (c) + retrieval positives
    assert table[3] == [True] * 7  # (d) full UNIMO
    assert all(c.cmcl for c in arms)
    # (d) mixes in text/image-only data; (a) has no hard negatives to match or scope
    arm_specific = {*flags, "batch_texts", "batch_images"}
    arm_specific |= {"sentence_negative_length_gap", "hard_negative_scope"}
    common = [
        f.name for f in TrainConfig.__dataclass_fields__.values() if f.name not in arm_specific
    ]
    for name in common:
        values = {repr(getattr(c, name)) for c in arms}
        assert len(values) == 1, f"arms differ in {name}: {values}"
    for name in ("sentence_negative_length_gap", "hard_negative_scope"):
        assert len({repr(getattr(c, name)) for c in arms[1:]}) == 1, f"b-d differ in {name}"


def test_overrides_parse_json_values_and_reject_unknown_fields(tmp_path):
    assert parse_override("steps=20") == ("steps", 20)
    assert parse_override("rewrites=null") == ("rewrites", None)
    assert parse_override("model=unimo-minilm") == ("model", "unimo-minilm")
    assert parse_override('loss_weights={"mlm": 0.5}') == ("loss_weights", {"mlm": 0.5})
    config = load_config("tiny", ["steps=20", "lr=0.5", "mlm=false"])
    assert (config.steps, config.lr, config.mlm) == (20, 0.5, False)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        load_config("tiny", ["stepz=3"])
    with pytest.raises(ValueError, match="not key=value"):
        parse_override("steps")
    with pytest.raises(ValueError, match="unknown training config"):
        load_config("no-such-preset")
    assert parse_override("model_overrides.hidden_size=64") == ("model_overrides.hidden_size", 64)
    path = tmp_path / "c.json"
    path.write_text('{"model": "unimo-tiny", "pairs": "p.jsonl", "data_dir": "/data"}')
    config = load_config(path)
    assert config.resolved().pairs == "/data/p.jsonl"


def test_dotted_overrides_set_one_entry_of_a_dict_field_and_undotted_ones_replace_it():
    preset = load_config("synth-small")
    one = load_config("synth-small", ["model_overrides.num_hidden_layers=4", "loss_weights.itm=2"])
    assert one.model_overrides == {**preset.model_overrides, "num_hidden_layers": 4}
    assert one.loss_weights == {**preset.loss_weights, "itm": 2}
    same = load_config("synth-small", {"model_overrides.num_hidden_layers": 4})
    assert same.model_overrides == one.model_overrides
    whole = load_config("synth-small", ['model_overrides={"hidden_size": 64}'])
    assert whole.model_overrides == {"hidden_size": 64}
    assert load_config("tiny", ["loss_weights.mlm=0.5"]).loss_weights["mlm"] == 0.5
    with pytest.raises(ValueError, match=r"'steps\.x'.*one entry of model_overrides or loss_w"):
        load_config("tiny", ["steps.x=3"])
    with pytest.raises(ValueError, match="one entry of"):
        load_config("tiny", ["model_overrides.=3"])
    with pytest.raises(ValueError, match="is not a dict"):
        load_config("tiny", ["model_overrides=3", "model_overrides.hidden_size=64"])


def test_schedule_warms_up_then_follows_the_cosine():
    kw = {"lr": 1.0, "warmup_steps": 10, "total_steps": 110, "min_lr_ratio": 0.1}
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(109, **kw) == pytest.approx(0.1)
    mid = 10 + 99 / 2
    assert lr_at(int(mid), **kw) == pytest.approx(
        0.1 + 0.45 * (1 + math.cos(math.pi * (int(mid) - 10) / 99))
    )
    values = [lr_at(s, **kw) for s in range(10, 110)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_hard_negative_weight_reaches_the_loss_only_where_hard_negatives_are_on():
    from unimo_kit.model import create_model
    from unimo_kit.train.distributed import DistInfo
    from unimo_kit.train.trainer import build_objective

    model = create_model("unimo-tiny", num_hidden_layers=1)
    dist = DistInfo(rank=0, world_size=1, local_rank=0)
    for preset, weight in (("synth-a-cmcl", 0.0), ("synth-b-negatives", 1.0)):
        config = load_config(preset)
        assert config.hard_negative_weight == 1.0  # the same in every arm (see above)
        objective = build_objective(config, model, dist)
        assert objective.cmcl_loss.hard_negative_weight == weight, preset
    with pytest.raises(ValueError, match="hard_negative_weight"):
        TrainConfig(hard_negative_weight=-0.5)
    with pytest.raises(ValueError, match="'rank' needs hard_negative_weight > 0"):
        TrainConfig(hard_negative_scope="rank")
    rank_only = load_config("synth-b-negatives", {"hard_negative_scope": "rank"})
    assert build_objective(rank_only, model, dist).cmcl_loss.hard_negative_scope == "rank"


def test_the_demo_preset_is_the_full_arm_with_the_negatives_on_binding_at_2000_steps():
    demo, full = load_config("synth-small"), load_config("synth-d-full")
    differ = {f for f in TrainConfig.__dataclass_fields__ if getattr(demo, f) != getattr(full, f)}
    assert differ == {"steps", "negative_types"}
    assert demo.steps == 2000 and demo.token_alignment
    assert set(demo.negative_types) == {"swap-att", "swap-obj", "replace-rel", "replace-att"}


def test_presets_b_to_d_keep_sentence_negatives_length_matched_and_in_the_rank_loss():
    for name in ("synth-b-negatives", "synth-c-retrieval", "synth-d-full", "synth-small"):
        config = load_config(name)
        assert config.sentence_negatives, name
        assert config.sentence_negative_length_gap == 1, name
        assert config.hard_negative_scope == "rank" and config.hard_negative_weight > 0, name
    assert load_config("synth-a-cmcl").hard_negative_scope == "all"


def test_every_ablation_arm_trains_token_alignment():
    for name in ARMS:
        assert load_config(name).token_alignment, name
    assert not TrainConfig().token_alignment  # off unless asked for


def test_token_alignment_reaches_the_objective_and_needs_cmcl():
    from unimo_kit.model import create_model
    from unimo_kit.train.distributed import DistInfo
    from unimo_kit.train.trainer import build_objective

    model = create_model("unimo-tiny", num_hidden_layers=1)
    dist = DistInfo(rank=0, world_size=1, local_rank=0)
    off = load_config("synth-a-cmcl", {"token_alignment": False})
    assert build_objective(off, model, dist).token_alignment is None
    assert build_objective(load_config("synth-a-cmcl"), model, dist).token_alignment is not None
    on = build_objective(load_config("synth-b-negatives"), model, dist)
    assert on.token_alignment.hard_negative_weight == 1.0
    with pytest.raises(ValueError, match=r"token_alignment .* needs cmcl=true"):
        TrainConfig(cmcl=False, token_alignment=True)


def test_configs_extend_presets_and_files_and_refuse_cycles(tmp_path):
    """``extends`` loads the named preset or file first; the file's keys replace the parent's,
    dict fields merge entry by entry; the arms are written as the previous arm plus their flags."""
    import json

    base = tmp_path / "base.json"
    base.write_text(
        json.dumps(
            {
                "extends": "synth-d-full",
                "loss_weights": {"mlm": 0.5, "itm": 2.0},
                "model_overrides": {"num_hidden_layers": 3},
            }
        )
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "child.json").write_text(json.dumps({"extends": "../base.json", "steps": 7}))
    config = load_config(sub / "child.json", ["lr=0.001"])
    full = load_config("synth-d-full")
    assert (config.steps, config.lr) == (7, 0.001)
    assert config.loss_weights == {**full.loss_weights, "mlm": 0.5, "itm": 2.0}
    assert config.model_overrides == {**full.model_overrides, "num_hidden_layers": 3}
    assert full.model_overrides["hidden_size"] == 128  # kept from synth-a-cmcl, three files up
    assert config.mrp and config.batch_texts == full.batch_texts
    assert "extends" not in config.to_dict()
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(ValueError, match=r"cycle: \S*a\.json -> \S*b\.json -> \S*a\.json"):
        load_config(tmp_path / "a.json")
    (tmp_path / "bad.json").write_text(json.dumps({"extends": "no-such-preset"}))
    with pytest.raises(ValueError, match="unknown training config 'no-such-preset'"):
        load_config(tmp_path / "bad.json")
    from unimo_kit.train.config import presets_dir

    parents = {
        "synth-b-negatives": "synth-a-cmcl",
        "synth-c-retrieval": "synth-b-negatives",
        "synth-d-full": "synth-c-retrieval",
        "synth-small": "synth-d-full",
    }
    for name, parent in parents.items():
        raw = json.loads((presets_dir() / f"{name}.json").read_text())
        assert raw["extends"] == parent, name


def test_extends_errors_name_the_file_and_run_folders_load(tmp_path):
    import json

    child = tmp_path / "child.json"
    child.write_text(json.dumps({"extends": "parts/missing.json"}))
    with pytest.raises(ValueError, match=r"extended by .*child\.json.*parts/missing\.json"):
        load_config(child)
    child.write_text(json.dumps({"extends": ""}))
    with pytest.raises(ValueError, match="the config name is empty"):
        load_config(child)
    child.write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(ValueError, match="must hold a JSON object"):
        load_config(child)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"extends": "synth-b-negatives", "seed": 3}))
    (tmp_path / "again.json").write_text(json.dumps({"extends": "run", "steps": 5}))
    config = load_config(tmp_path / "again.json")
    assert (config.seed, config.steps, config.rewrite_negatives) == (3, 5, True)
    assert load_config(run).seed == 3


def test_resume_differences_sort_fields_into_refused_noted_and_free():
    base = TrainConfig(steps=100, lr=1e-4, threads=2, pairs="/data/pairs.jsonl")
    saved = base.to_dict()
    assert resume_differences(saved, base) == ([], [])

    changed = TrainConfig(
        steps=200, lr=3e-4, threads=1, eval_every=5, pairs="/moved/pairs.jsonl",
        token_alignment=True,
    )  # fmt: skip
    refused, noted = resume_differences(saved, changed)
    assert refused == ["lr: 0.0001 -> 0.0003", "token_alignment: false -> true"]
    assert noted == ['pairs: "/data/pairs.jsonl" -> "/moved/pairs.jsonl"', "steps: 100 -> 200"]

    # A checkpoint of an older version: missing fields count as their defaults, fields this
    # version no longer knows are dropped.
    old = {k: v for k, v in saved.items() if k != "token_alignment"} | {"retired_knob": 1}
    assert resume_differences(old, base) == ([], [])
    assert resume_differences(old, changed)[0][-1] == "token_alignment: false -> true"


def test_non_default_fields_name_only_what_differs_from_the_defaults():
    config = load_config("tiny", {"seed": 3, "mirror_horizontal": 0.0})
    fields = config.non_default_fields()
    assert fields["seed"] == 3 and "mirror_horizontal" not in fields
    assert all(getattr(TrainConfig(), k) != getattr(config, k) for k in fields)
    assert TrainConfig().non_default_fields() == {}


def test_itm_gives_the_model_a_matching_head_fresh_or_from_a_checkpoint(tmp_path):
    """``itm`` reaches the objective, and the model gets a matching head whether built fresh or
    started from a checkpoint trained without one (its other weights kept)."""
    import torch

    from unimo_kit.model import create_model, save_checkpoint
    from unimo_kit.train.distributed import DistInfo
    from unimo_kit.train.trainer import build_model, build_objective

    dist = DistInfo(rank=0, world_size=1, local_rank=0)
    assert not TrainConfig().itm  # off unless asked for
    fresh = build_model(TrainConfig(itm=True), {"dim": 16})
    assert fresh.matching_head is not None and fresh.config.matching_head
    assert build_objective(TrainConfig(itm=True), fresh, dist).use["itm"]
    assert build_model(TrainConfig(), {"dim": 16}).matching_head is None

    torch.manual_seed(0)
    before = create_model("unimo-tiny", visual_feat_dim=16)
    save_checkpoint(before, tmp_path / "plain")
    started = build_model(TrainConfig(itm=True, init_checkpoint=str(tmp_path / "plain")), None)
    assert started.matching_head is not None
    kept = before.state_dict()
    for name, value in started.state_dict().items():
        if not name.startswith("matching_head."):
            torch.testing.assert_close(value, kept[name])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mlm=False", 'mlm must be true or false, got "False"'),  # Python spelling: refused
        ("seq2seq=off", 'seq2seq must be true or false, got "off"'),
        ("lr=abc", 'lr must be a number, got "abc"'),
        ("steps=1.5", "steps must be an integer, got 1.5"),
        ("data_dir=2024", "data_dir must be a string, got 2024"),
        ("adam_betas=[0.9]", r"adam_betas must be a list of 2 numbers, got \[0.9\]"),
        ("adam_betas=[0.9, 1.5]", r"adam_betas must both be in \[0, 1\)"),
        ("loss_weights.mlm=heavy", 'loss_weights.mlm must be a number, got "heavy"'),
        ('negative_types=["swap-att", 3]', "negative_types must be a list of strings"),
        ("batch_pairs=-1", "batch_pairs must be >= 0, got -1"),
        ("save_every=0", "save_every must be >= 1, got 0"),
        ("log_every=0", "log_every must be >= 1, got 0"),
        ("lr=0", "lr must be > 0, got 0.0"),
        ("mlm_probability=1.5", "mlm_probability must be <= 1, got 1.5"),
    ],
)
def test_values_are_checked_against_each_fields_type_and_range(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny", [override])


def test_values_of_the_right_type_are_normalised():
    config = load_config("tiny", ["steps=1e3", "lr=1", "adam_betas=[0.9, 0.99]", "mlm=false"])
    assert config.steps == 1000 and isinstance(config.steps, int)
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.adam_betas == (0.9, 0.99) and config.mlm is False


def test_a_config_where_no_objective_has_data_is_refused():
    with pytest.raises(ValueError, match=r"no objective has data \(objectives on: cmcl, mrp;"):
        load_config("tiny", ["batch_pairs=0", "batch_images=0", "mlm=false", "seq2seq=false"])
    # Text-only data feeds the language objectives.
    assert load_config("tiny", ["batch_pairs=0", "batch_images=0"]).mlm


def test_init_checkpoint_applies_shape_keeping_overrides_and_refuses_the_others(tmp_path):
    from unimo_kit.model import create_model, save_checkpoint
    from unimo_kit.train.trainer import build_model

    save_checkpoint(create_model("unimo-tiny", visual_feat_dim=16), tmp_path / "plain")
    start = {"init_checkpoint": str(tmp_path / "plain")}
    dropout = TrainConfig(**start, model_overrides={"hidden_dropout_prob": 0.5})
    assert build_model(dropout, None).config.hidden_dropout_prob == 0.5
    deeper = TrainConfig(**start, model_overrides={"hidden_dropout_prob": 0.5,
                                                   "num_hidden_layers": 4})  # fmt: skip
    with pytest.raises(ValueError, match=r"model_overrides num_hidden_layers=4 change the shapes"):
        build_model(deeper, None)
