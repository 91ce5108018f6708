"""Model speed against named references, in one run.

1. Encoder: ``UnimoModel`` (unimo-minilm, text alone) forward + backward against
   ``transformers.BertModel`` (the same MiniLM weights, SDPA attention) on the same batch.
   Our Transformer is written out by hand for UniLM masks; this checks it costs nothing.
2. Captioning: ``generate`` (key/value cache) against re-encoding the whole sequence at every
   step (the obvious implementation), greedy, same outputs.
3. Objective: one ``UnimoPretraining`` step (all objectives, all batch groups) against the bare
   forward + backward of the pair batch encoded once, to show what the seven passes cost.

    python benchmarks/bench_model.py [--device cuda] [--iters 10]

Writes benchmarks/results/model.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F

from unimo_kit.model import UnimoPretraining, create_model
from unimo_kit.model.masks import seq2seq_mask


def timed(fn, iters: int, device: str) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = []
    for _ in range(iters):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def text_batch(b: int, t: int, device: str):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (b, t), generator=g)
    ids[:, 0] = 101
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    ar = torch.arange(t)[None]
    ids[ar == lengths[:, None] - 1] = 102
    mask = (ar < lengths[:, None]).long()
    ids[mask == 0] = 0
    return ids.to(device), mask.to(device)


def bench_encoder(args) -> dict:
    from transformers import BertModel

    from unimo_kit.resources import minilm_path

    ours = create_model("unimo-minilm", device=args.device)
    ref = BertModel.from_pretrained(str(minilm_path()), attn_implementation="sdpa").to(args.device)
    ids, mask = text_batch(args.batch, args.text_length, args.device)

    def run_ours():
        ours(input_ids=ids, attention_mask=mask)["hidden"].sum().backward()

    def run_ref():
        ref(input_ids=ids, attention_mask=mask).last_hidden_state.sum().backward()

    t_ours, t_ref = (
        timed(run_ours, args.iters, args.device),
        timed(run_ref, args.iters, args.device),
    )
    return {"ours_s": t_ours, "transformers_bert_s": t_ref, "ratio": t_ours / t_ref}


@torch.no_grad()
def naive_greedy(model, feats, max_length: int) -> list[list[int]]:
    """Re-encode [IMG] regions [CLS] w_1..w_t at every step (no cache)."""
    cfg = model.config
    b = feats.shape[0]
    ids = torch.full((b, 1), cfg.cls_token_id, device=feats.device)
    done = torch.zeros(b, dtype=torch.bool, device=feats.device)
    for _ in range(max_length):
        x, valid, nv = model.embed(ids, None, feats)
        prefix = torch.full((b,), nv, device=feats.device)
        hidden, _ = model.encoder(x, seq2seq_mask(valid, prefix))
        token = F.log_softmax(model.lm_logits(hidden[:, -1]), -1).argmax(-1)
        token = token.masked_fill(done, cfg.pad_token_id)
        ids = torch.cat([ids, token[:, None]], 1)
        done |= token == cfg.sep_token_id
        if done.all():
            break
    out = []
    for row in ids[:, 1:].tolist():
        row = [t for t in row if t != cfg.pad_token_id]
        out.append(row[: row.index(cfg.sep_token_id)] if cfg.sep_token_id in row else row)
    return out


def bench_generation(args) -> dict:
    torch.manual_seed(0)
    model = create_model("unimo-minilm", device=args.device).eval()
    with torch.no_grad():  # never emit [SEP] so both run the full length
        model.lm_head.bias[model.config.sep_token_id] = -1e4
    feats = torch.randn(args.batch, 49, 1280, device=args.device)
    cached = model.generate(feats, max_length=args.caption_length)
    naive = naive_greedy(model, feats, args.caption_length)
    same = cached == naive
    t_cached = timed(lambda: model.generate(feats, max_length=args.caption_length), 3, args.device)
    t_naive = timed(lambda: naive_greedy(model, feats, args.caption_length), 3, args.device)
    t_beam = timed(
        lambda: model.generate(feats, max_length=args.caption_length, num_beams=3), 3, args.device
    )
    return {
        "cached_s": t_cached,
        "recompute_s": t_naive,
        "speedup": t_naive / t_cached,
        "beam3_s": t_beam,
        "same_output": same,
    }


def bench_objective(args) -> dict:
    torch.manual_seed(0)
    model = create_model("unimo-minilm", device=args.device)
    objective = UnimoPretraining(model).to(args.device)
    b, t, n = args.batch, args.text_length, 49
    ids, mask = text_batch(b, t, args.device)
    feats = torch.randn(b, n, 1280, device=args.device)
    boxes = torch.rand(b, n, 5, device=args.device)
    vmask = torch.ones(b, n, dtype=torch.long, device=args.device)
    batch = {
        "pair_image_ids": torch.arange(b, device=args.device),
        "text_input_ids": ids,
        "text_attention_mask": mask,
        "visual_feats": feats,
        "visual_boxes": boxes,
        "visual_mask": vmask,
    }
    h = max(1, b // 2)
    batch |= {
        "neg_text_input_ids": ids[:h],
        "neg_text_attention_mask": mask[:h],
        "neg_text_owner": torch.arange(h, device=args.device),
        "textonly_input_ids": ids,
        "textonly_attention_mask": mask,
        "imageonly_visual_feats": feats,
        "imageonly_visual_boxes": boxes,
        "imageonly_visual_mask": vmask,
    }

    def step():
        out = objective(batch)
        sum(v for k, v in out.items() if k.endswith("_loss")).backward()

    def one_pass():
        out = model(input_ids=ids, attention_mask=mask, visual_feats=feats, visual_boxes=boxes)
        out["hidden"].sum().backward()

    t_step = timed(step, args.iters, args.device)
    t_pass = timed(one_pass, args.iters, args.device)
    return {"objective_step_s": t_step, "one_pair_pass_s": t_pass, "ratio": t_step / t_pass}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--text-length", type=int, default=32)
    parser.add_argument("--caption-length", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "model.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    result = {
        "config": {**vars(args), "out": os.path.relpath(args.out, Path(__file__).parents[1])},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "encoder_vs_transformers": bench_encoder(args),
        "generation_cache_vs_recompute": bench_generation(args),
        "objective_vs_one_pass": bench_objective(args),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
