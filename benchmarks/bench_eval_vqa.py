"""easy-VQA accuracy and CPU budget of the unified-model answer classifier.

Fine-tunes with :func:`unimo_kit.eval.vqa.train_vqa` and compares, in the same output, against
the majority-answer baseline and the published CNN + bag-of-words baseline on the same data
(87.6 % test accuracy, the easy-VQA author's Keras model). Writes
benchmarks/results/eval_vqa.json.

    python benchmarks/bench_eval_vqa.py                          # from scratch (unimo-tiny)
    python benchmarks/bench_eval_vqa.py --checkpoint runs/synth/final --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from unimo_kit.eval.vqa import VqaConfig, load_easy_vqa, train_vqa

PUBLISHED_CNN_BOW = 0.876  # easy-VQA author's CNN + bag-of-words baseline, test accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="start from a unimo checkpoint")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".cache/vqa")
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "eval_vqa.json")
    )
    args = parser.parse_args()
    config = VqaConfig(
        checkpoint=args.checkpoint,
        epochs=args.epochs,
        lr=args.lr,
        image_size=args.image_size,
        threads=args.threads,
        seed=args.seed,
        cache_dir=args.cache_dir,
        eval_each_epoch=True,
    )
    result = train_vqa(load_easy_vqa("train"), load_easy_vqa("test"), config)
    result.pop("answers")
    result["reference_cnn_bow_accuracy"] = PUBLISHED_CNN_BOW
    result["ratio_to_reference"] = round(result["accuracy"] / PUBLISHED_CNN_BOW, 4)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    if result["config"].get("cache_dir"):  # a folder of this machine: not in results files
        result["config"]["cache_dir"] = "a temporary folder"
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
