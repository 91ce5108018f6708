"""The main job on the embedded default: the whole UNIMO pipeline on the synthetic world.

``make demo`` (``unimo demo``) runs each stage as its ``unimo`` subcommand, exactly as a user
would type it, so the demo doubles as a worked example. Each stage declares the stages whose
outputs it reads (:attr:`Stage.after`)::

    synth
    rewrite              after synth
    index build texts    after synth
    features             after synth
    index build images   after features (it reads the features store)
    index mine           after index build texts, index build images
    train                after rewrite, index mine, features
    eval batch           after train; then REPORT.md

``--jobs 1`` runs them one after another in the order listed by :func:`build_stages` (the
order of ``commands.sh``); with ``--jobs 2`` (the default on two cores) rewrite and the text
index run beside the feature extraction, each writing its output to ``OUT/logs/NAME.log``.

Every image goes through EfficientNet-Lite0 once, in ``features``: the image index is built
from the features store (encoder ``features:WORLD/features``, the grid's final stage
average-pooled: the vector ``timm:tf_efficientnet_lite0`` gives for the uncropped image), and
mining's image queries read the same store.

Layout under ``out`` (default ``runs/demo``)::

    world/        the synthetic world, plus rewrites.jsonl, retrieved.jsonl and features/
    indexes/      the text and image indexes
    run/          the training run (config, log.csv, checkpoints, final/)
    eval.json     the `unimo eval batch` config of the last stage
    results/      results.json/.csv/.md (retrieval, compositional, caption) and plots/
    commands.sh   every stage's command, in an order they can run in (re-run them by hand)
    logs/         NAME.log: the output of each stage that ran beside another (--jobs 2)
    REPORT.md     the figures, plots, and examples of rewrites and mined positives

A stage that finished is skipped on rerun (its marker, the stage's resume manifest
``.stages/NAME.json`` in the one manifest format of :mod:`unimo_kit.utils.manifest`, records
the command and a digest of the training preset or evaluation config it read); a changed
command or digest runs it again, and every stage that needs it (directly or through others),
each from empty outputs (their markers are deleted as it starts, so that a stop at any point
cannot leave one marked done); the stages that do not need it are still skipped. A stage
killed mid-run (so are two killed side by side) resumes when rerun with the same settings
(the marker is written when a stage starts, with ``"finished": false``) and none of the stages
it needs ran again; otherwise it starts afresh. The commands name absolute
paths, and a marker's command is compared up to how it spells the demo folder (a marker lives
in the folder it describes), so ``-o runs/demo``, ``-o $PWD/runs/demo``, a run from
another directory and a folder moved since are the same run; so is a marker that spells an
output the way an earlier version did (``--out``, ``--output-dir``: see :data:`OLD_OUTPUT_FLAGS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unimo_kit.utils.manifest import Manifest, ManifestError, write_manifest


@dataclass
class DemoConfig:
    """Sizes of the demo; docs/RESULTS.md has the measured stage times (the defaults: about
    24 minutes of stages one after another on an idle 2-core machine, far more under load;
    ``jobs=2`` overlaps the data stages)."""

    out: Path = Path("runs/demo")  # everything the demo writes goes here
    # synthetic images (80% train, 10% val, 10% test); 4,000 rather than 1,000 because with
    # 800 training images the model memorises each image's negatives instead of learning the
    # rule (docs/RESULTS.md, tenth session), at the cost of 15-30 minutes of data stages
    n_images: int = 4000
    # more scenes for the compositional test set alone (None: as many as the test split, i.e.
    # 400 more to the 400 test images: 650-800 items per category)
    compositional_images: int | None = None
    seed: int = 0  # one seed for the world and training
    train_preset: str = "synth-small"  # a preset of unimo_kit/train/presets
    train_steps: int | None = None  # override the preset's number of steps
    sentence_negatives: int = 2  # TF-IDF neighbour captions per caption
    extractor: str = "effnet-ms"  # visual tokens (unimo features --extractor)
    beams: int = 3  # beam size for the captioning evaluation
    # more KEY=VALUE for `unimo train --set` (unimo demo --set), after seed/steps; part of the
    # train stage's command line and fingerprint, so a changed value retrains
    extra_train_args: list[str] = field(default_factory=list)

    @property
    def extra_compositional_images(self) -> int:
        """``compositional_images``, its default resolved."""
        if self.compositional_images is None:
            return round(0.1 * self.n_images)
        return self.compositional_images


@dataclass
class Stage:
    """One step of the pipeline: a ``unimo`` command line and what it leaves behind.

    A finished stage is done while its command line, :data:`DEMO_VERSION` and ``fingerprint``
    (a digest of what the command reads besides its arguments: the training preset's
    contents, the evaluation config) stay the same. A stage that runs again starts afresh:
    its ``outputs`` are removed first, since every command resumes from what its output
    already holds (records by id, index blocks, checkpoints) and would otherwise keep what an
    earlier world or setting produced. Only a stage killed mid-run and rerun with the same
    settings, none of the stages it needs (``after``) run again, resumes.
    """

    name: str
    argv: list[str]
    description: str
    fingerprint: str | None = None
    outputs: tuple[Path, ...] = ()
    # the fingerprint of another spelling of ``argv`` (an earlier marker's); None: ``fingerprint``
    fingerprint_of: Callable[[list[str]], str | None] | None = None
    # the stages whose outputs this one reads (each listed before it): it starts once they
    # finished, and runs again whenever one of them ran in this demo
    after: tuple[str, ...] = ()


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def train_fingerprint(preset: str, overrides: list[str]) -> str:
    """Digest of the training config that ``unimo train --config PRESET --set ...`` resolves,
    so that an edited preset retrains even though the command line reads the same.

    Fields at their :class:`~unimo_kit.train.TrainConfig` defaults are left out: a field added
    in a later version (whose default keeps what training did before) does not retrain
    finished runs (:meth:`~unimo_kit.train.TrainConfig.non_default_fields`)."""
    from unimo_kit.train.config import load_config

    return _digest(load_config(preset, overrides).non_default_fields())


def _set_values(argv: list[str]) -> list[str]:
    """The ``KEY=VALUE`` items of every ``--set`` in ``argv``."""
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--set"]


def build_stages(config: DemoConfig) -> list[Stage]:
    """The demo's commands, in an order they can run in one after another (each after the
    stages it needs). Paths are absolute, so that ``-o runs/demo`` and ``-o $PWD/runs/demo``
    are the same run."""
    out = Path(os.path.abspath(config.out))
    world = out / "world"
    indexes = out / "indexes"
    results = out / "results"
    train_set = [f"data_dir={world}", f"seed={config.seed}"]
    if config.train_steps:
        train_set.append(f"steps={config.train_steps}")
    train_set += config.extra_train_args
    extra = config.extra_compositional_images
    return [
        Stage(
            "synth",
            [
                "data",
                "synth",
                "-o",
                str(world),
                "--n-images",
                str(config.n_images),
                "--compositional-images",
                str(extra),
                "--seed",
                str(config.seed),
            ],
            "render the synthetic world (images, captions with gold scene graphs, corpora)",
            outputs=(world,),
        ),
        Stage(
            "rewrite",
            [
                "rewrite",
                str(world / "pairs.train.jsonl"),
                "-o",
                str(world / "rewrites.jsonl"),
                "--seed",
                str(config.seed),
                "--sentence-negatives",
                str(config.sentence_negatives),
                "--scenes",
                str(world / "scenes.jsonl"),
            ],
            "parse training captions; typed and sentence hard negatives (checked false on the gold "
            "scene)",
            outputs=(world / "rewrites.jsonl", world / "rewrites.jsonl.manifest.json"),
            after=("synth",),
        ),
        Stage(
            "index-texts",
            [
                "index",
                "build",
                "--texts",
                str(world / "texts.jsonl"),
                "--name",
                "texts",
                "--root",
                str(indexes),
            ],
            "embed the text-only corpus (MiniLM) into a FAISS index",
            outputs=(indexes / "texts",),
            after=("synth",),
        ),
        Stage(
            "features",
            [
                "features",
                *(str(world / f"pairs.{s}.jsonl") for s in ("train", "val", "test")),
                str(world / "images.jsonl"),
                *([str(world / "compositional.images.jsonl")] if extra else []),
                "-o",
                str(world / "features"),
                "--extractor",
                config.extractor,
            ],
            f"extract visual tokens ({config.extractor}: EfficientNet-Lite0 7x7 grid) of every "
            "image",
            outputs=(world / "features",),
            after=("synth",),
        ),
        Stage(
            "index-images",
            [
                "index",
                "build",
                "--images",
                str(world / "images.jsonl"),
                "--name",
                "images",
                "--root",
                str(indexes),
                "--encoder",
                f"features:{world / 'features'}",
            ],
            "index the image-only collection by its pooled EfficientNet-Lite0 grid, read from "
            "the features store (no second CNN pass)",
            outputs=(indexes / "images",),
            after=("features",),
        ),
        Stage(
            "mine",
            [
                "index",
                "mine",
                "--pairs",
                str(world / "pairs.train.jsonl"),
                "--text-index",
                "texts",
                "--image-index",
                "images",
                "--root",
                str(indexes),
                "-o",
                str(world / "retrieved.jsonl"),
                "--scenes",
                str(world / "scenes.jsonl"),
            ],
            "retrieve related texts and images (positives) and neighbour captions (negatives, "
            "checked false on the gold scene)",
            # the second is the caption-level index the negatives come from (cli/index.py)
            outputs=(
                world / "retrieved.jsonl",
                world / "retrieved.jsonl.captions",
                world / "retrieved.jsonl.manifest.json",
            ),
            after=("index-texts", "index-images"),  # and, through them, synth and features
        ),
        Stage(
            "train",
            [
                "train",
                "--config",
                config.train_preset,
                "-o",
                str(out / "run"),
                *(arg for item in train_set for arg in ("--set", item)),
            ],
            "train UNIMO: CMCL and token alignment with rewrites and retrieval, MLM, seq2seq, "
            "masked regions",
            fingerprint=train_fingerprint(config.train_preset, train_set),
            fingerprint_of=lambda argv: train_fingerprint(config.train_preset, _set_values(argv)),
            outputs=(out / "run",),
            after=("rewrite", "mine", "features"),
        ),
        Stage(
            "eval",
            ["eval", "batch", str(out / "eval.json"), "-o", str(results)],
            "retrieval R@K, compositional accuracy per category (pooled and word-to-region "
            "scores), captioning (test split)",
            fingerprint=_digest(eval_config(config)),
            outputs=(results,),
            after=("train",),  # and, through it, the world and its features
        ),
    ]


def eval_config(config: DemoConfig) -> dict:
    """The ``unimo eval batch`` config of the demo (paths relative to ``out``)."""
    return {
        "name": "unimo_kit demo (synthetic world, test split)",
        "checkpoints": [
            {
                "label": "unimo-demo",
                "path": "run/final",
                "features": "world/features",
                "run_dir": "run",
            },
        ],
        "tasks": [
            {"task": "retrieval", "data": "world/pairs.test.jsonl", "ks": [1, 5, 10]},
            {"task": "compositional", "data": "world/compositional.test.jsonl"},
            {
                "task": "compositional",
                "name": "compositional-token",
                "data": "world/compositional.test.jsonl",
                "score": "token",
            },
            {"task": "caption", "data": "world/pairs.test.jsonl", "beams": config.beams},
        ],
    }


# Bump when a stage's output changes meaning under the same command line, so that a demo
# folder of an earlier version is not half reused. 2: negatives checked on gold scenes in
# rewrite and mine, effnet-ms features, compositional subsets. 3: a 4,000-image world by
# default, and a stage that runs again removes its outputs (a version-2 folder resumed them).
DEMO_VERSION = 3


class StaleDemoError(RuntimeError):
    """The output folder holds a demo run of another :data:`DEMO_VERSION`."""


def _marker(out: Path, stage: Stage) -> Path:
    """The stage's resume manifest (:mod:`unimo_kit.utils.manifest`): ``OUT/.stages/NAME.json``,
    its settings the command line, :data:`DEMO_VERSION`, the settings digest and whether the
    stage finished."""
    return out / ".stages" / f"{stage.name}.json"


def read_stage_record(path: Path) -> dict | None:
    """The settings of a stage's manifest (``argv``, ``version``, ``fingerprint``,
    ``finished``, ``seconds``); a marker of a demo before manifests (a flat JSON object) is read
    as it is; ``None`` when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "manifest_version" not in data:
        return data
    try:
        return Manifest.from_json(data, str(path)).settings
    except ManifestError:
        return None


def _read_marker(out: Path, stage: Stage) -> dict | None:
    return read_stage_record(_marker(out, stage))


def _write_marker(out: Path, stage: Stage, record: dict) -> None:
    marker = _marker(out, stage)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(marker, Manifest(stage=f"demo {stage.name}", settings=record))


_OUT = "<OUT>"  # stands for the demo folder when commands are compared

#: how the stages spelled ``-o/--output`` before it was one option (``data synth``,
#: ``train``: ``--out``; ``eval batch``: ``--output-dir``); a marker's command written so is
#: the same command
OLD_OUTPUT_FLAGS = ("--out", "--output-dir", "--output")


def output_spelled_short(argv: list[str]) -> list[str]:
    """``argv`` with every spelling of the output flag as ``-o`` (the demo's own)."""
    return ["-o" if word in OLD_OUTPUT_FLAGS else word for word in argv]


def _recorded_out(recorded: list[str], argv: list[str], out: Path) -> str | None:
    """How a marker's command spelled the demo folder: read off the first word where the
    current command (which names ``out`` absolutely) names it."""
    folder = str(out)
    for a, b in zip(recorded, argv, strict=True):
        if folder in b:
            head, tail = b.split(folder, 1)
            if a.startswith(head) and a.endswith(tail) and len(a) > len(head) + len(tail):
                return a[len(head) : len(a) - len(tail)]
            return None
    return None


def _out_free(argv: list[str], folder: str) -> list[str]:
    """``argv`` with the demo folder (a whole path, or the start of one, also after ``KEY=``
    or an encoder spec's ``PREFIX:``) replaced by a placeholder."""
    pattern = re.compile(rf"(^|=|:){re.escape(folder)}(?=/|$)")
    return [pattern.sub(lambda m: m.group(1) + _OUT, word) for word in argv]


def _same_argv(recorded: list[str], argv: list[str], out: Path) -> bool:
    """The same command line up to how the demo folder is spelled. A marker lives in the
    folder it describes, so its paths name this folder whatever they say: relative ones from
    whichever directory the run was started in (an earlier version kept the folder as typed),
    or the absolute path the folder had before it was moved; the output flag as any version
    spelled it."""
    recorded, argv = output_spelled_short(recorded), output_spelled_short(argv)
    if recorded == argv:
        return True
    if len(recorded) != len(argv):
        return False
    spelled = _recorded_out(recorded, argv, out)
    return spelled is not None and _out_free(recorded, spelled) == _out_free(argv, str(out))


def _same_settings(marker: dict | None, stage: Stage, out: Path) -> bool:
    """The marker records a run of this very stage: same command, settings and version."""
    if marker is None or not isinstance(marker.get("argv"), list):
        return False
    recorded = marker["argv"]
    fingerprint = stage.fingerprint
    if stage.fingerprint_of is not None and recorded != stage.argv:
        try:  # the digest covers the paths as the marker spells them
            fingerprint = stage.fingerprint_of(recorded)
        except (ValueError, TypeError):  # settings no longer valid: not this run
            return False
    return (
        _same_argv(recorded, stage.argv, out)
        and marker.get("version", 1) == DEMO_VERSION
        and marker.get("fingerprint") == fingerprint
    )


def _is_done(marker: dict | None, stage: Stage, out: Path) -> bool:
    return _same_settings(marker, stage, out) and bool(marker.get("finished", True))


def _was_killed(marker: dict | None, stage: Stage, out: Path) -> bool:
    """An unfinished run of this very stage: its output is resumable."""
    return _same_settings(marker, stage, out) and not marker.get("finished", True)


def _check_version(out: Path, stages: list[Stage]) -> None:
    old = sorted(
        {
            marker.get("version", 1)
            for stage in stages
            if (marker := _read_marker(out, stage)) is not None
            and marker.get("version", 1) != DEMO_VERSION
        }
    )
    if old:
        raise StaleDemoError(
            f"{out} holds a demo run of an earlier version ({old[0]}; this is "
            f"{DEMO_VERSION}) whose outputs do not fit this one's; rerun with --no-resume to "
            "start it afresh, or pass another -o/--output"
        )


def restart(out: Path) -> None:
    """Remove a demo output folder (only one that the demo made: it holds ``.stages/``)."""
    if not out.exists():
        return
    if not (out / ".stages").is_dir():
        raise StaleDemoError(f"{out} does not look like a demo folder (no .stages/); not removed")
    shutil.rmtree(out)


def default_jobs() -> int:
    """How many stages ``unimo demo`` runs at once unless told (``--jobs``): the CPU cores this
    process may use, at most 2 (the stages that can overlap are one rewrite, one text index and
    one feature extraction: a third would only share the same cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, cores or 1))


def _check_order(stages: list[Stage]) -> None:
    """Every stage's needs are earlier stages: the list is an order the stages can run in."""
    seen: set[str] = set()
    for stage in stages:
        if unknown := [name for name in stage.after if name not in seen]:
            raise ValueError(f"stage {stage.name} needs {unknown}, which are not listed before it")
        seen.add(stage.name)


def dependants(stages: list[Stage]) -> dict[str, set[str]]:
    """Each stage's dependants: the stages that need it, directly or through others (those
    that must run again when it does)."""
    below: dict[str, set[str]] = {stage.name: set() for stage in stages}
    for stage in reversed(stages):  # a dependant comes after what it needs
        for name in stage.after:
            below[name] |= {stage.name} | below[stage.name]
    return below


def _beside_another(stages: list[Stage]) -> set[str]:
    """The stages that can run at the same time as some other (neither needs the other)."""
    below = dependants(stages)
    return {
        a.name
        for a in stages
        for b in stages
        if a is not b and b.name not in below[a.name] and a.name not in below[b.name]
    }


def _spawn(python: str, argv: list[str], log: Path | None, append: bool) -> subprocess.Popen:
    """Start ``python -m unimo_kit.cli.main ARGV``; its stdout and stderr go to ``log`` when
    given (appended to when ``append``), else to the demo's own."""
    command = [python, "-m", "unimo_kit.cli.main", *argv]
    if log is None:
        return subprocess.Popen(command)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a" if append else "w") as handle:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT
        )


def _reap(process: subprocess.Popen, *, block: bool) -> float | None:
    """Wait for ``process`` (or only look, unless ``block``); sets its ``returncode`` and
    returns the user + system CPU seconds of its process tree, from its own rusage
    (``os.wait4``: right while other stages run too), or ``None`` while it still runs."""
    pid, status, usage = os.wait4(process.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


class StageFailedError(subprocess.CalledProcessError):
    """A demo stage's command failed: names the stage and where its output is."""

    def __init__(self, stage: str, returncode: int, argv: list[str], log: Path | None) -> None:
        super().__init__(returncode, ["unimo", *argv])
        self.stage = stage
        self.log = log

    def __str__(self) -> str:
        if self.returncode < 0:
            how = f"killed by signal {-self.returncode}"
        else:
            how = f"exit status {self.returncode}"
        where = f"its output is in {self.log}" if self.log else "its own message is above"
        return f"stage {self.stage} failed ({how}); {where}"


@dataclass
class _Running:
    """A stage whose command runs."""

    number: int
    stage: Stage
    process: subprocess.Popen
    record: dict  # the marker's settings
    log: Path | None
    started: float  # time.perf_counter()
    started_at: float  # time.time()
    load_before: float


def _start(
    python: str, number: int, stage: Stage, record: dict, log: Path | None, resuming: bool
) -> _Running:
    load_before = os.getloadavg()[0]
    started_at, started = time.time(), time.perf_counter()
    return _Running(
        number=number,
        stage=stage,
        process=_spawn(python, stage.argv, log, append=resuming),
        record=record,
        log=log,
        started=started,
        started_at=started_at,
        load_before=load_before,
    )


def _timing(running: _Running, cpu_seconds: float) -> dict[str, float | list[float]]:
    return {
        "seconds": time.perf_counter() - running.started,
        "cpu_seconds": cpu_seconds,
        "load_average": [round(running.load_before, 2), round(os.getloadavg()[0], 2)],
        "started_at": round(running.started_at, 3),
        "finished_at": round(time.time(), 3),
    }


def _next_to_finish(running: list[_Running]) -> tuple[_Running, float]:
    """Wait until one of the running stages ends; it and its CPU seconds."""
    if len(running) == 1:
        return running[0], _reap(running[0].process, block=True) or 0.0
    while True:
        for candidate in running:
            if (cpu := _reap(candidate.process, block=False)) is not None:
                return candidate, cpu
        time.sleep(0.05)


def _stop(running: list[_Running]) -> None:
    """End the stages still running (the demo itself is stopping) and wait for them; their
    markers stay unfinished, so that a rerun resumes them."""
    for stage in running:
        if stage.process.returncode is None:
            stage.process.terminate()
    for stage in running:
        if stage.process.returncode is None:
            _reap(stage.process, block=True)


def _log_tail(log: Path, lines: int = 20) -> list[str]:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def run_stage(python: str, argv: list[str]) -> dict[str, float | list[float]]:
    """Run ``python -m unimo_kit.cli.main ARGV`` and time it.

    On a shared machine the wall time is inflated by the load; the CPU time is not, and is
    close to the idle wall time of a single-threaded stage.

    Args:
        python: the interpreter.
        argv: the ``unimo`` command's words.

    Returns:
        ``{"seconds": wall, "cpu_seconds": user + system of the process tree,
        "load_average": [1-minute load before, after], "started_at", "finished_at": Unix
        times}``.

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    running = _start(python, 0, Stage("command", argv, ""), {}, None, resuming=False)
    try:
        cpu = _reap(running.process, block=True) or 0.0
    except BaseException:
        _stop([running])
        raise
    if running.process.returncode:
        raise subprocess.CalledProcessError(running.process.returncode, running.process.args)
    return _timing(running, cpu)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def run_demo(
    config: DemoConfig,
    *,
    echo: Callable[[str], None] = print,
    python: str = sys.executable,
    jobs: int = 1,
) -> Path:
    """Run every stage not yet done, up to ``jobs`` at once, then write ``REPORT.md``.

    A stage starts once the stages it needs (:attr:`Stage.after`) finished. It is skipped when
    its marker says it finished with the same settings and none of those stages ran in this
    demo; a stage that runs deletes the markers of its dependants first (they run again, and
    only they). With ``jobs=1`` the stages run in their listed order, their output in the
    demo's own; with more, the ready stage with the most dependants starts first (ties in
    listed order), and a stage that can run beside another writes its output to
    ``OUT/logs/NAME.log``. When a stage fails no other starts; those already running are left
    to finish (and marked done), then the error is raised. When the demo itself is stopped
    (Ctrl-C), the running stages are ended and waited for; a rerun resumes them.

    Args:
        config: sizes and paths.
        echo: where progress lines go.
        python: interpreter that runs ``-m unimo_kit.cli.main`` for each stage.
        jobs: how many stages may run at the same time (at least 1).

    Returns:
        Path of the report.

    Raises:
        StageFailedError: a stage failed (a :class:`subprocess.CalledProcessError`; its log's
            last lines were echoed).
    """
    from unimo_kit.demo_report import write_report

    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out = Path(os.path.abspath(config.out))
    stages = build_stages(config)
    _check_order(stages)
    _check_version(out, stages)
    out.mkdir(parents=True, exist_ok=True)
    eval_json = out / "eval.json"
    eval_text = json.dumps(eval_config(config), indent=2) + "\n"
    if not eval_json.exists() or eval_json.read_text() != eval_text:
        eval_json.write_text(eval_text)
    below = dependants(stages)
    by_name = {stage.name: stage for stage in stages}
    logged = _beside_another(stages) if jobs > 1 else set()
    waiting = list(enumerate(stages, start=1))
    if jobs > 1:  # the longest chains first: overlap the rest with them
        waiting.sort(key=lambda item: -len(below[item[1].name]))
    finished: set[str] = set()  # done already, or ran to the end in this demo
    ran: set[str] = set()  # started in this demo
    running: list[_Running] = []
    failure: StageFailedError | None = None
    total = len(stages)
    try:
        while waiting or running:
            while failure is None and len(running) < jobs:
                ready = next((item for item in waiting if set(item[1].after) <= finished), None)
                if ready is None:
                    break
                waiting.remove(ready)
                number, stage = ready
                line = "unimo " + shlex.join(stage.argv)
                header = f"[{number}/{total}] {stage.name}: {stage.description}"
                earlier = _read_marker(out, stage)
                needs_ran = bool(ran.intersection(stage.after))
                if not needs_ran and _is_done(earlier, stage, out):
                    echo(f"{header} -- done already, skipped")
                    finished.add(stage.name)
                    continue
                resuming = not needs_ran and _was_killed(earlier, stage, out)
                ran.add(stage.name)
                # Its dependants must run again: forget them on disk before anything is
                # removed, so that a stop from here on cannot leave one marked done over
                # stale outputs.
                for name in below[stage.name]:
                    _marker(out, by_name[name]).unlink(missing_ok=True)
                log = out / "logs" / f"{stage.name}.log" if stage.name in logged else None
                started = f" (started {_clock()})" if jobs > 1 else ""
                echo(f"{header}{started}\n    $ {line}")
                if log is not None:
                    echo(f"    output: {log}")
                if resuming:
                    echo("    resuming the run that was stopped")
                elif stale := [path for path in stage.outputs if path.exists()]:
                    echo(f"    starts afresh: removing {', '.join(map(str, stale))}")
                    for path in stale:
                        if path.is_dir():
                            shutil.rmtree(path)
                        else:
                            path.unlink()
                # Recorded before the stage runs, so that a killed stage's output is known to
                # be of these settings (resumed by the same ones, removed by others).
                record = {
                    "argv": stage.argv,
                    "version": DEMO_VERSION,
                    "fingerprint": stage.fingerprint,
                }
                _write_marker(out, stage, {**record, "finished": False})
                running.append(_start(python, number, stage, record, log, resuming))
            if not running:
                break
            done, cpu = _next_to_finish(running)
            running.remove(done)
            name = done.stage.name
            prefix = f"[{done.number}/{total}] {name} " if jobs > 1 else "    "
            if done.process.returncode:
                error = StageFailedError(name, done.process.returncode, done.stage.argv, done.log)
                if jobs > 1:  # with one job the stage's own message is the last line above
                    echo(f"[{done.number}/{total}] {error}")
                if done.log is not None:
                    echo(f"    last lines of {done.log}:")
                    for text in _log_tail(done.log):
                        echo(f"    | {text}")
                if running:
                    others = ", ".join(r.stage.name for r in running)
                    echo(f"    no stage starts now; waiting for {others} to finish")
                failure = failure or error
                continue
            timing = _timing(done, cpu)
            _write_marker(out, done.stage, {**done.record, **timing, "finished": True})
            finished.add(name)
            at = f"at {_clock()} " if jobs > 1 else ""
            echo(
                f"{prefix}finished {at}in {timing['seconds']:.0f} s "
                f"(CPU {timing['cpu_seconds']:.0f} s, "
                f"load {timing['load_average'][0]:.1f} -> {timing['load_average'][1]:.1f})"
            )
    except BaseException:
        _stop(running)
        raise
    if failure is not None:
        raise failure
    commands = ["#!/usr/bin/env bash", "# The commands `unimo demo` ran, in order.", "set -e"]
    commands += ["unimo " + shlex.join(stage.argv) for stage in stages]
    (out / "commands.sh").write_text("\n".join(commands) + "\n")
    report = write_report(out)
    echo(f"report: {report}")
    return report
