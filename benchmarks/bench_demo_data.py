"""The demo's data stages before/after the removal of repeated work (issue #22 item 2), one run.

Before: every image went through EfficientNet-Lite0 twice (``index build --images`` with
``timm:tf_efficientnet_lite0``, then ``features``) and a third time for the train pairs'
images as mining's image queries, and mining encoded every pair's captions again although the
caption index it had just built holds their embeddings. After: ``features`` runs first, the
image index is built from its store (``features:WORLD/features``, no CNN run), mining's image
queries read the same store, and its caption queries are the caption index's stored rows.

Both sides run the stages exactly as ``unimo demo`` builds them (its ``build_stages``), each
from its own tree: ``after`` a worktree of ``--after`` (default HEAD), ``before`` the same
worktree with the data-stage files (:data:`DATA_STAGE_FILES`) as of ``--before``, so the
code of every other stage is the same on both sides. One synthetic world is rendered once
and copied to both; then each stage runs for ``before`` and ``after`` in turn (load changes
hit both sides alike). ``rewrite`` is left out: nothing changed in it and no data stage
reads its output (training does). ``index-texts`` is the same command on both sides: its
ratio shows the noise of the machine. The before side's image index and its mining read
vectors of the centre-cropped image; the after side's of the whole image (docs/features.md).

Example::

    nice python benchmarks/bench_demo_data.py --n-images 300 --before c2479f9~1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_STAGE_FILES = (
    "unimo_kit/demo.py",
    "unimo_kit/encoders/registry.py",
    "unimo_kit/encoders/cnn.py",
    "unimo_kit/encoders/features.py",
    "unimo_kit/index/mine.py",
)
TIMED = ("index-texts", "features", "index-images", "mine")  # after's order; before's needs none


def git(*words: str) -> str:
    """Output of a git command in this repository."""
    done = subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_tree(folder: Path, after: str, before: str | None) -> None:
    """A detached worktree of ``after``; with ``before``, its :data:`DATA_STAGE_FILES` as of
    ``before`` (a file that did not exist then is removed). ``unimo_kit/cli`` links to the
    tree's ``cli/`` so the tree's own CLI is imported, not the editable install's."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), after],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    if before is not None:
        for path in DATA_STAGE_FILES:
            done = subprocess.run(
                ["git", "show", f"{before}:{path}"], cwd=REPO, capture_output=True, check=False
            )
            target = folder / path
            if done.returncode:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(done.stdout)
    (folder / "unimo_kit" / "cli").symlink_to(folder / "cli", target_is_directory=True)


def stages_of(tree: Path, out: Path, n_images: int) -> dict[str, list[str]]:
    """``{stage name: argv}`` of the tree's ``unimo demo`` for ``out``, in its order."""
    code = (
        "import json, sys; from pathlib import Path; import unimo_kit;"
        "from unimo_kit.demo import DemoConfig, build_stages;"
        f"stages = build_stages(DemoConfig(out=Path({str(out)!r}), n_images={n_images}));"
        "print(json.dumps([unimo_kit.__file__, [[s.name, s.argv] for s in stages]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=_env(tree), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    package, stages = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(package).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: unimo_kit was imported from {package}")
    return dict(stages)


def _env(tree: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_stage(tree: Path, argv: list[str], log: Path) -> dict[str, float]:
    """Run one ``unimo`` command from ``tree``; its wall and CPU seconds (children's)."""
    before = os.times()
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"$ unimo {' '.join(argv)}\n")
        handle.flush()
        done = subprocess.run(
            [sys.executable, "-m", "unimo_kit.cli.main", *argv],
            cwd=tree, env=_env(tree), stdout=handle, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode:
        raise RuntimeError(f"{tree}: unimo {' '.join(argv)} failed; see {log}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def image_index_agreement(outs: dict[str, Path]) -> dict[str, float]:
    """How far the two sides' image indexes agree: cosine of each image's two vectors and the
    share of images whose nearest other image is the same."""
    import numpy as np

    from unimo_kit.index.store import IndexStore

    vectors, ids = {}, {}
    for side, out in outs.items():
        store = IndexStore.open(out / "indexes" / "images")
        vectors[side] = np.concatenate(list(store.embedding_blocks()))
        ids[side] = [r["id"] for r in store.records]
    if ids["before"] != ids["after"]:
        raise RuntimeError("the two image indexes hold different images")
    a, b = vectors["before"], vectors["after"]
    cosine = (a * b).sum(axis=1)
    nearest = {}
    for side, v in (("before", a), ("after", b)):
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        nearest[side] = sim.argmax(axis=1)
    return {
        "images": len(a),
        "cosine_mean": round(float(cosine.mean()), 4),
        "cosine_min": round(float(cosine.min()), 4),
        "same_nearest_image": round(float((nearest["before"] == nearest["after"]).mean()), 4),
    }


def mined_image_overlap(outs: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Quality of the mined image positives on each side, from the world's gold scenes: the
    mean Jaccard overlap between the pair's and the retrieved image's sets of shapes and of
    (shape, colour), with the same for random image-only images as chance."""
    import numpy as np

    world = outs["after"] / "world"
    lines = (world / "scenes.jsonl").read_text().splitlines()
    scenes = {s["id"]: s for s in map(json.loads, lines)}
    keys = {"shape": lambda o: o["shape"], "shape_colour": lambda o: (o["shape"], o["color"])}

    def jaccard(a: str, b: str, key) -> float:
        x, y = ({key(o) for o in scenes[i]["objects"]} for i in (a, b))
        return len(x & y) / len(x | y)

    out: dict[str, dict[str, float]] = {}
    records = {}
    for side, folder in outs.items():
        lines = (folder / "world" / "retrieved.jsonl").read_text().splitlines()
        records[side] = [json.loads(line) for line in lines]
        hits = [(r["id"], h["id"]) for r in records[side] for h in r["images"] if h["id"] in scenes]
        out[side] = {name: round(float(np.mean([jaccard(a, b, key) for a, b in hits])), 4)
                     for name, key in keys.items()}  # fmt: skip
        out[side]["images_per_pair"] = round(len(hits) / len(records[side]), 2)
    rng = np.random.default_rng(0)
    others = [i for i in scenes if i.startswith("img-")]
    draws = [(r["id"], str(i)) for r in records["after"] for i in rng.choice(others, 5)]
    out["random"] = {name: round(float(np.mean([jaccard(a, b, key) for a, b in draws])), 4)
                     for name, key in keys.items()}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=300, help="synthetic world size")
    parser.add_argument("--before", default="c2479f9~1", help="revision of the data stages")
    parser.add_argument("--after", default="HEAD", help="revision of everything (worktree)")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/demo_data.json"))
    parser.add_argument("--keep", default=None, help="keep the run folder here (else a tmp)")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-demo-data-"))
    root.mkdir(parents=True, exist_ok=True)
    trees = {"before": root / "tree-before", "after": root / "tree-after"}
    outs = {side: root / side for side in trees}
    log = root / "stages.log"
    # resolved once, before anything runs: HEAD may move while the stages run
    args.after = git("rev-parse", "--short", args.after)
    args.before = git("rev-parse", "--short", args.before)
    try:
        make_tree(trees["after"], args.after, None)
        make_tree(trees["before"], args.after, args.before)
        stages = {side: stages_of(trees[side], outs[side], args.n_images) for side in trees}
        run_stage(trees["after"], stages["after"]["synth"], log)
        for side in ("before",):  # one world, rendered once, for both sides
            shutil.copytree(outs["after"] / "world", outs[side] / "world")
        timings: dict[str, dict[str, dict[str, float]]] = {"before": {}, "after": {}}
        for name in TIMED:
            for side in ("before", "after"):
                timings[side][name] = run_stage(trees[side], stages[side][name], log)
                print(f"{name:13s} {side:6s} {timings[side][name]}", flush=True)
        result = summarise(args, stages, timings, outs)
    finally:
        for tree in trees.values():
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False,
                capture_output=True,
            )  # fmt: skip
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratio"], indent=2))


def summarise(args, stages, timings, outs) -> dict:
    """The results file: per-stage seconds of both sides, their ratios, and how the image
    index's vectors changed."""
    total = {
        side: {
            key: round(sum(t[key] for t in timings[side].values()), 1)
            for key in ("wall_s", "cpu_s")
        }
        for side in timings
    }
    ratio = {
        name: round(timings["before"][name]["wall_s"] / timings["after"][name]["wall_s"], 2)
        for name in TIMED
    }
    ratio["total_wall"] = round(total["before"]["wall_s"] / total["after"]["wall_s"], 2)
    ratio["total_cpu"] = round(total["before"]["cpu_s"] / total["after"]["cpu_s"], 2)
    return {
        "benchmark": "benchmarks/bench_demo_data.py",
        "what": "unimo demo data stages (index-texts, features, index-images, mine) before/"
        "after, each stage of both sides in turn on one synthetic world",
        "n_images": args.n_images,
        "before": f"{args.after} with {', '.join(DATA_STAGE_FILES)} as of {args.before}",
        "after": args.after,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average at the end "
        f"{os.getloadavg()[0]:.1f} (shared with other jobs)",
        "stage_order": {side: [n for n in stages[side] if n in TIMED] for side in stages},
        "seconds": timings,
        "total": total,
        "ratio": ratio,
        "image_index_agreement": image_index_agreement(outs),
        "mined_image_overlap": mined_image_overlap(outs),
        "not_timed": "synth (run once, shared), rewrite (unchanged; read by training only), "
        "train, eval",
    }


if __name__ == "__main__":
    main()
