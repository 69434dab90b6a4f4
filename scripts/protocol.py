#!/usr/bin/python3
"""The experiments of docs/results.md (issue 17), as resumable runs.

Every hyperparameter of fine-tuning (learning rate, layer-wise decay, epochs) is chosen on
held-out *training* images (splitmask-eval --validation), by one rule for every encoder: the
highest validation accuracy, ties to the cheaper run. Only the chosen configuration then runs on
the test split, with 3 seeds. Each finished run leaves a small JSON in docs/results/protocol/
(committed), and a run whose JSON is there is skipped, so the protocol continues across working
sessions. So does each finished pre-training's encoder (docs/results/protocol/encoders/, 1.8 MB
each: the weights every evaluation of it reads), so that its evaluations in later sessions, on
other machines, start from the same weights; and so does an unfinished fine-tuning's state
(docs/results/protocol/unfinished/, 5.5 MB each, removed when it ends), as the longest
fine-tunings outlast a session. Checkpoints and logs stay in runs/protocol/ (not committed); an
evaluation whose encoder is missing pre-trains it (again, resuming a checkpoint left in runs/)
first.

The experiments, run in this order (`list` prints every step):
  compare    from scratch and SplitMask at 1% and 10% of the labels (100% last: the longest)
  ablation   SplitMask without InfoNCE (lambda 0) and BEiT at 1%, selected by the same rule;
             their frozen k-NN and linear probe at 10%; then (before 100% of the labels)
             SplitMask with InfoNCE at a tenth of its weight (lambda 0.1), alike
  tokenizers SplitMask with random-patch words, with 64 and 1024 k-means words, and with
             k-means from distinct draws (--distinct-words), fine-tuned at 1% with the
             configuration chosen for SplitMask; and for each tokenizer, how
             well the decoder predicts near-uniform patches and the others (target_loss.py)
  samples    SplitMask pre-trained on 1%, 5%, 10%, 25% of the images for the same steps,
             fine-tuned at 10% and 1% with the configuration chosen for SplitMask
  schedule   on the 5% subset, 1/8, 1/2 and 2 times those steps; frozen k-NN and linear probe
             of every pre-training of the series and of the sample-efficiency runs, beside
             raw pixels and the random encoder

    scripts/protocol.py run [--short] [--only EXPERIMENT ...] [--encoders NAME ...] [--jobs J]
                                                                 # what is not done, in order
    scripts/protocol.py status [--short]                         # what is done, what was chosen
    scripts/protocol.py list [--short]
    scripts/protocol.py table [--short] [--svg DIR]              # Markdown (and charts)

--short: nano-28 on 3000 training images, a few steps: the check that CI runs (a minute).
Environment: BUILD_DIR (default build), DATA (Debian's Fashion-MNIST), THREADS (each run's;
default: the cores, divided among --jobs), WORK_DIR (checkpoints and logs; default
runs/protocol or runs/protocol-short, where the short mode also keeps its results),
BUILD_COMMIT (the commit the programs were built at, recorded with each result; default: the
checkout's)."""
import argparse
import datetime
import functools
import hashlib
import itertools
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = os.environ.get("DATA", "/usr/share/datasets/fashion-mnist")
BUILD = pathlib.Path(os.environ.get("BUILD_DIR", ROOT / "build"))
THREADS = os.environ.get("THREADS", "0")  # each run's; main() divides the cores among --jobs
JOBS = 1  # runs at once (run --jobs)
SEEDS = (0, 1, 2)


class Mode:
    """The sizes of a protocol: the full one of docs/results.md, or CI's short check."""

    def __init__(self, short):
        self.short = short
        self.work = pathlib.Path(os.environ.get(
            "WORK_DIR", ROOT / "runs" / ("protocol-short" if short else "protocol")))
        self.results = self.work / "results" if short else ROOT / "docs" / "results" / "protocol"
        self.validation = 0.1
        if short:
            self.preset = "nano-28"
            self.subset = ["--train-limit", "3000", "--test-limit", "500"]
            steps = ["--steps", "20", "--batch", "32", "--vocabulary-images", "500",
                     "--kmeans-iterations", "2"]
            self.pretrainings = {
                "splitmask": ["--objective", "splitmask", *steps, "--train-limit", "3000"],
                "splitmask-lambda0": ["--objective", "splitmask", *steps, "--train-limit", "3000",
                                      "--objective-options", "lambda=0"],
                "splitmask-1000": ["--objective", "splitmask", *steps, "--train-limit", "1000"],
                "splitmask-random": ["--objective", "splitmask", *steps[:-2], "--train-limit",
                                     "3000", "--kmeans-iterations", "0"],
            }
            self.target_images = 500
            self.grid = {0.1: {"lr": [1e-3, 2e-3], "layer_decay": [0.75, 1.0], "epochs": [2]}}
            self.max_epochs = {0.1: 4}
            self.min_scales = [1.0]
            self.batch = 32
            self.jobs = [Job("compare", "scratch", 0.1), Job("compare", "splitmask", 0.1),
                         Job("ablation", "splitmask-lambda0", 0.1),
                         Job("tokenizers", "splitmask-random", 0.1, config_from="splitmask"),
                         *[Job("tokenizers", e, None, targets=True)
                           for e in ("splitmask", "splitmask-random") if has_torch()],
                         Job("samples", "splitmask-1000", 0.1, config_from="splitmask"),
                         Job("schedule", "splitmask-1000", 0.1, frozen=True)]
            return
        self.preset = "mini-28"
        self.subset = []
        # Epochs are passes over the labelled images: more for fewer labels. With all labels a
        # run of 40 epochs is about 45 minutes on 2 cores, so that grid is smaller.
        self.grid = {
            0.01: {"lr": [1e-3, 2e-3, 4e-3], "layer_decay": [0.75, 1.0], "epochs": [100, 300]},
            0.1: {"lr": [1e-3, 2e-3, 4e-3], "layer_decay": [0.75, 1.0], "epochs": [30, 100]},
            1.0: {"lr": [1e-3, 2e-3], "layer_decay": [0.75, 1.0], "epochs": [15, 40]},
        }
        # The longest selection run, by doubling the best's epochs: a budget, not a sitting's
        # length (fine-tunings resume). 160 epochs of all labels are 8.6 million images, about
        # 3 hours of one core; at 10%, 800 epochs are half that.
        self.max_epochs = {0.01: 1200, 0.1: 800, 1.0: 160}
        # The crop scale, tried last (beside the default 0.8) with the best of the rest: the
        # smallest area a fine-tuning crop keeps. 0.35, the pre-training's, did much worse in
        # the first protocol's trials.
        self.min_scales = [0.5, 1.0]
        self.batch = 64
        # Pre-training: 20 epochs of the 60 000 images at batch 64 are 18 740 steps (937 a
        # pass, the partial batch dropped); the subsets get the same number of steps.
        full = 18740
        splitmask = ["--objective", "splitmask"]
        self.pretrainings = {
            "splitmask": [*splitmask, "--epochs", "20"],
            "splitmask-lambda0": [*splitmask, "--epochs", "20", "--objective-options", "lambda=0"],
            "beit": ["--objective", "beit", "--epochs", "20"],
            # Whether InfoNCE hurts by its weight: a tenth of it, between lambda 1 and 0.
            "splitmask-lambda0.1": [*splitmask, "--epochs", "20", "--objective-options",
                                    "lambda=0.1"],
            # The tokenizer experiment: random-patch words, and other vocabulary sizes.
            "splitmask-random": [*splitmask, "--epochs", "20", "--kmeans-iterations", "0"],
            "splitmask-k64": [*splitmask, "--epochs", "20", "--preset", "mini-28-k64"],
            "splitmask-k1024": [*splitmask, "--epochs", "20", "--preset", "mini-28-k1024"],
            # k-means started from 256 distinct draws: by default a third of the words are
            # copies of the black patch, which k-means never separates.
            "splitmask-distinct": [*splitmask, "--epochs", "20", "--distinct-words"],
        }
        self.target_images = 10000
        samples = [600, 3000, 6000, 15000]  # 1%, 5%, 10%, 25% (100%: "splitmask")
        for n in samples:
            self.pretrainings[f"splitmask-{n}"] = [*splitmask, "--steps", str(full),
                                                   "--train-limit", str(n)]
        schedule = [full // 8, full // 2, 2 * full]  # on 5% of the images, beside 18 740
        for steps in schedule:
            self.pretrainings[f"splitmask-3000-steps{steps}"] = [
                *splitmask, "--steps", str(steps), "--train-limit", "3000"]
        self.jobs = [
            Job("compare", "scratch", 0.01), Job("compare", "splitmask", 0.01),
            Job("ablation", "splitmask-lambda0", 0.01), Job("ablation", "beit", 0.01),
            # Whether a part changes the features themselves: frozen, beside SplitMask's own
            # (measured in the schedule experiment, with raw pixels and the random encoder).
            *[Job("ablation", e, 0.1, frozen=True) for e in ("splitmask-lambda0", "beit")],
            *[Job("tokenizers", e, 0.01, config_from="splitmask") for e in TOKENIZERS[1:]],
            *[Job("tokenizers", e, None, targets=True) for e in TOKENIZERS],
            Job("compare", "scratch", 0.1), Job("compare", "splitmask", 0.1),
            *[Job("samples", f"splitmask-{n}", f, config_from="splitmask")
              for n in samples for f in (0.1, 0.01)],
            *[Job("schedule", f"splitmask-3000-steps{s}", 0.1, config_from="splitmask")
              for s in schedule],
            *[Job("schedule", e, 0.1, frozen=True)
              for e in ["pixels", "scratch", "splitmask", *(f"splitmask-{n}" for n in samples),
                        *(f"splitmask-3000-steps{s}" for s in schedule)]],
            Job("ablation", "splitmask-lambda0.1", 0.01),
            Job("ablation", "splitmask-lambda0.1", 0.1, frozen=True),
            Job("compare", "scratch", 1.0), Job("compare", "splitmask", 1.0),
        ]


class Job:
    """A step of an experiment: an encoder at a label fraction, either selected on held-out
    images and then tested (the default), tested with the configuration chosen for another
    encoder (config_from), measured frozen (k-NN and linear probe), or its pre-training's
    decoder measured on its targets (targets; no fraction)."""

    def __init__(self, experiment, encoder, fraction, config_from=None, frozen=False,
                 targets=False):
        self.experiment, self.encoder, self.fraction = experiment, encoder, fraction
        self.config_from, self.frozen, self.targets = config_from, frozen, targets

    def fine_tuned(self):
        return not (self.frozen or self.targets)

    def selected(self):
        """Whether this job chooses its encoder's configuration at its fraction."""
        return self.fine_tuned() and not self.config_from

    def label(self):
        if self.targets:
            return f"{self.experiment}: {self.encoder}'s targets (target_loss.py)"
        return (f"{self.experiment}: {self.encoder} at {self.fraction:g}"
                + (" (frozen)" if self.frozen else "")
                + (f" with {self.config_from}'s configuration" if self.config_from else ""))


EXPERIMENTS = ["compare", "ablation", "tokenizers", "samples", "schedule"]
# The tokenizer experiment's pre-trainings, SplitMask's own (k-means, 256 words) first.
TOKENIZERS = ["splitmask", "splitmask-random", "splitmask-k64", "splitmask-k1024",
              "splitmask-distinct"]
# Debian's PyTorch (scripts/target_loss.py needs it; python3-torch is not a build dependency).
PYTHON = "/usr/bin/python3"


@functools.lru_cache(maxsize=None)
def has_torch():
    """Whether PYTHON imports torch and numpy (asked once, and only when a run needs it)."""
    return subprocess.run([PYTHON, "-c", "import torch, numpy"],
                          capture_output=True).returncode == 0


# ---- Runs ----------------------------------------------------------------------------------

class Run:
    """One program run: its result JSON (committed) and what it needs first."""

    def __init__(self, stage, name, program, args, needs=None, config=None):
        self.stage, self.name, self.program, self.args = stage, name, program, args
        self.needs = needs  # a pre-training Run whose checkpoint this evaluation reads
        self.config = config  # fine-tuning's hyperparameters, recorded with the result

    def result(self, mode):
        return mode.results / self.stage / f"{self.name}.json"

    def done(self, mode):
        path = self.result(mode)
        if not path.exists():
            return False
        return self.config is None or json.loads(path.read_text()).get("config") == self.config


def pretraining(mode, name):
    out = mode.work / f"pretrain-{name}"
    own = mode.pretrainings[name]
    preset = [] if "--preset" in own else ["--preset", mode.preset]
    args = [*preset, *own, "--seed", "0", "--out", str(out), "--data", DATA, "--threads",
            THREADS]
    return Run("pretrain", name, "splitmask-pretrain", args)


def checkpoint(mode, run):
    """The pre-training's whole checkpoint (its decoder and optimizer too), in runs/."""
    return mode.work / f"pretrain-{run.name}" / "checkpoint.safetensors"


def encoder_file(mode, run):
    """The pre-trained encoder that evaluations read, kept with the results (keep_encoder)."""
    return mode.results / "encoders" / f"{run.name}.safetensors"


def read_safetensors_header(f):
    """The JSON header of the safetensors file open in `f`, which is left at the tensor data."""
    size = int.from_bytes(f.read(8), "little")
    return json.loads(f.read(size))


def write_atomically(path, data):
    """Writes `data` (bytes) to `path` through a temporary file: the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def keep_encoder(source, path):
    """Writes the encoder of checkpoint `source` to `path`: a checkpoint of the same metadata
    whose tensors are only the ones its metadata groups under "encoder" (what splitmask-eval
    loads), a fifth of the whole. Atomic, like every result."""
    with open(source, "rb") as f:
        header = read_safetensors_header(f)
        data = f.read()
    metadata = header["__metadata__"]
    kept, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in json.loads(metadata["groups"])["encoder"]:
        begin, end = header[name]["data_offsets"]
        kept[name] = dict(header[name], data_offsets=[offset, offset + end - begin])
        blobs.append(data[begin:end])
        offset += end - begin
    text = json.dumps(kept, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format's alignment of the tensor data
    write_atomically(path, len(text).to_bytes(8, "little") + text + b"".join(blobs))


def pretrained(mode, run):
    """Whether the pre-training an evaluation `run` needs is there: its kept encoder, or for
    the decoder's targets the whole checkpoint. True when it needs none."""
    needs = run.needs
    if needs is None:
        return True
    wanted = checkpoint(mode, needs) if run.stage == "targets" else encoder_file(mode, needs)
    return needs.done(mode) and wanted.exists()


def encoder(mode, name):
    """(the eval arguments that load encoder `name`, the pre-training it needs)."""
    if name == "scratch":  # fine-tuned: from scratch; frozen: the random encoder
        return ["--preset", mode.preset], None
    if name == "pixels":  # frozen only: the raw pixels as features
        return ["--pixels"], None
    p = pretraining(mode, name)
    return ["--checkpoint", str(encoder_file(mode, p))], p


# splitmask-eval's --min-scale, which the grid's configurations use (they name no crop scale).
DEFAULT_MIN_SCALE = 0.8


def finetune_args(mode, fraction, config, seed):
    return ["--mode", "finetune", "--label-fraction", str(fraction), "--lr", str(config["lr"]),
            "--layer-decay", str(config["layer_decay"]), "--epochs", str(config["epochs"]),
            "--min-scale", str(config.get("min_scale", DEFAULT_MIN_SCALE)),
            "--batch", str(mode.batch), "--seed", str(seed), "--data", DATA, "--threads",
            THREADS, *mode.subset]


def configs(mode, fraction):
    grid = mode.grid[fraction]
    for lr, decay, epochs in itertools.product(grid["lr"], grid["layer_decay"], grid["epochs"]):
        yield {"lr": lr, "layer_decay": decay, "epochs": epochs}


def at_min_scale(config, scale):
    """`config` with crop scale `scale`; the default stays unnamed, as in the grid's runs (whose
    names and recorded configurations predate the crop stage)."""
    base = {k: v for k, v in config.items() if k != "min_scale"}
    return base if scale == DEFAULT_MIN_SCALE else dict(base, min_scale=scale)


def config_name(config):
    crop = f"-ms{config['min_scale']:g}" if "min_scale" in config else ""
    return f"lr{config['lr']:g}-ld{config['layer_decay']:g}-ep{config['epochs']:g}{crop}"


def selection(mode, name, fraction):
    """(the configurations encoder `name` needs at `fraction`, the chosen one or None while one
    of them has not run). The rule, the same for every encoder: the grid of learning rate,
    layer decay and epochs, at the default crop scale; while the best (validation accuracy; ties
    to fewer epochs) is the longest run of its learning rate and layer decay, that
    configuration again with twice the epochs, up to the fraction's cap, so that a baseline is
    trained until longer stops helping, not cut off at the grid's edge. Then the crop scale:
    the best again with each of mode.min_scales; the best of them wins, ties to the default."""
    wanted = list(configs(mode, fraction))
    tried = []
    for config in wanted:
        value = accuracy(mode, "select", f"{name}-{fraction:g}-{config_name(config)}")
        if value is None:
            return wanted, None
        tried.append((value, config))
    while True:
        best_value, best = max(tried, key=lambda t: (t[0], -t[1]["epochs"]))
        same = [c["epochs"] for _, c in tried
                if (c["lr"], c["layer_decay"]) == (best["lr"], best["layer_decay"])]
        longer = dict(best, epochs=2 * best["epochs"])
        if best["epochs"] < max(same) or longer["epochs"] > mode.max_epochs[fraction]:
            break
        wanted.append(longer)
        value = accuracy(mode, "select", f"{name}-{fraction:g}-{config_name(longer)}")
        if value is None:
            return wanted, None
        tried.append((value, longer))
    scales = [at_min_scale(best, scale) for scale in mode.min_scales]
    wanted += scales
    crops = [(best_value, best)]
    for config in scales:
        value = accuracy(mode, "select", f"{name}-{fraction:g}-{config_name(config)}")
        if value is None:
            return wanted, None
        crops.append((value, config))
    return wanted, max(crops, key=lambda t: (t[0], "min_scale" not in t[1]))[1]


def selection_runs(mode, name, fraction):
    """Fine-tuning of an encoder over its selection's configurations, measured on held-out
    training images."""
    load, needs = encoder(mode, name)
    for config in selection(mode, name, fraction)[0]:
        yield Run("select", f"{name}-{fraction:g}-{config_name(config)}", "splitmask-eval",
                  [*load, *finetune_args(mode, fraction, config, 0),
                   "--validation", str(mode.validation)], needs, config)


def chosen(mode, name, fraction):
    """The configuration selection() chose, or None while a selection run is missing."""
    return selection(mode, name, fraction)[1]


def test_runs(mode, name, fraction, config):
    """Fine-tuning of an encoder with `config` on the test split, 3 seeds. A result made with
    another configuration (the selection has moved since) is not done."""
    load, needs = encoder(mode, name)
    for seed in SEEDS:
        yield Run("test", f"{name}-{fraction:g}-seed{seed}", "splitmask-eval",
                  [*load, *finetune_args(mode, fraction, config, seed)], needs, config)


def job_runs(mode, job):
    """The runs of a job known so far: test runs appear once their configuration is chosen."""
    if job.targets:
        needs = pretraining(mode, job.encoder)
        return [Run("targets", job.encoder, "target_loss.py",
                    ["--checkpoint", str(checkpoint(mode, needs)), "--data", DATA, "--images",
                     str(mode.target_images)], needs)]
    if job.frozen:
        load, needs = encoder(mode, job.encoder)
        return [Run("frozen", f"{job.encoder}-{job.fraction:g}", "splitmask-eval",
                    [*load, "--mode", "frozen", "--label-fraction", str(job.fraction), "--seed",
                     "0", "--data", DATA, "--threads", THREADS, *mode.subset], needs)]
    runs = [] if job.config_from else list(selection_runs(mode, job.encoder, job.fraction))
    config = chosen(mode, job.config_from or job.encoder, job.fraction)
    if config is not None:
        runs += list(test_runs(mode, job.encoder, job.fraction, config))
    return runs


# ---- Running them --------------------------------------------------------------------------

def provenance(script=False):
    """Where a result comes from. A script's (script=True) commit is the checkout's, a
    program's the one BUILD_COMMIT names."""
    commit = (not script and os.environ.get("BUILD_COMMIT")) or subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
        text=True).stdout.strip()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"commit": commit, "cpu": cpu, "cores": os.cpu_count(), "host": platform.node(),
            "threads": int(THREADS) or os.cpu_count(), "runs_at_once": JOBS,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def sha256(path):
    """The checkpoint's identity: results of two pre-trainings that differ (another CPU, another
    build) must not be mixed, and the tables say when they are."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


LOG_LOCK = threading.Lock()


def log(mode, text):
    line = f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} {text}"
    with LOG_LOCK:
        print(line, flush=True)
        mode.work.mkdir(parents=True, exist_ok=True)
        with open(mode.work / "progress.log", "a") as f:
            f.write(line + "\n")


RUNNING = set()  # the programs running now, stopped when another run fails


def execute(mode, run, command, log_path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "OMP_WAIT_POLICY": "passive"})
        RUNNING.add(child)
        try:
            status = child.wait()
        finally:
            RUNNING.discard(child)
    if status != 0:
        raise SystemExit(f"protocol.py: {run.stage}/{run.name} failed with status {status}; "
                         f"see {log_path}")


def pretrain(mode, run):
    """Pre-trains (resuming a checkpoint that is there) and writes the run's summary."""
    ckpt = checkpoint(mode, run)
    command = [str(BUILD / "examples" / run.program), *run.args]
    if ckpt.exists():
        command += ["--resume", str(ckpt)]
    else:
        command += ["--overwrite"]
    start = time.time()
    execute(mode, run, command, mode.work / f"pretrain-{run.name}.log")
    records = [json.loads(line) for line in
               (ckpt.parent / "metrics.jsonl").read_text().splitlines()]
    keep_encoder(ckpt, encoder_file(mode, run))
    summary = {"program": run.program, "args": run.args,
               "last_metrics": records[-1] if records else {},
               "checkpoint_sha256": sha256(ckpt),
               "encoder_sha256": sha256(encoder_file(mode, run)), "seconds": time.time() - start,
               "training_seconds": training_seconds(records), **provenance()}
    write_result(mode, run, summary)


def training_seconds(records):
    """The pre-training's time over all its sittings: each resumed sitting starts its clock
    (the records' elapsed_s) again from zero."""
    total = previous = 0.0
    for r in records:
        elapsed = r.get("elapsed_s")
        if elapsed is None:
            continue
        if elapsed < previous:
            total += previous
        previous = elapsed
    return total + previous


def evaluate(mode, run):
    needs = run.needs
    if not pretrained(mode, run):
        log(mode, f"{run.name}: pre-training {needs.name} first (its encoder is missing or "
                  "unfinished)")
        pretrain(mode, needs)
    scratch = mode.work / run.stage / f"{run.name}.json"
    if run.program.endswith(".py") and not has_torch():
        raise SystemExit(f"protocol.py: {run.stage}/{run.name} needs PyTorch and NumPy at "
                         f"{PYTHON} (apt-get install python3-torch python3-numpy)")
    if state_file(mode, run) and state_file(mode, run).exists():
        log(mode, f"{run.name}: continuing the fine-tuning saved in {state_file(mode, run)}")
    start = time.time()
    execute(mode, run, evaluation_command(mode, run, scratch),
            mode.work / run.stage / f"{run.name}.log")
    report = json.loads(scratch.read_text())
    report.setdefault("seconds", time.time() - start)  # target_loss.py does not time itself
    report.get("finetune", {}).pop("curve", None)  # kept in runs/, not in the committed JSON
    report["provenance"] = provenance(script=run.program.endswith(".py"))
    if run.config is not None:
        report["config"] = run.config
    if needs is not None:  # the pre-training's identity, and the file this run read
        report["provenance"]["checkpoint_sha256"] = json.loads(
            needs.result(mode).read_text())["checkpoint_sha256"]
        if run.stage != "targets":
            report["provenance"]["encoder_sha256"] = sha256(encoder_file(mode, needs))
    write_result(mode, run, report)


def state_file(mode, run):
    """Where a fine-tuning keeps its state between sittings (splitmask-eval --state: saved
    every tenth of the run and when stopped, removed when done); None for other runs. With the
    results, to be committed when a session ends: the longest fine-tunings (10 hours of a core
    at 100% of the labels) span sessions, and runs/ does not outlast one."""
    if option_value(run.args, "--mode") != "finetune":
        return None
    return mode.results / "unfinished" / run.stage / f"{run.name}.state"


def evaluation_command(mode, run, json_path):
    if run.program.endswith(".py"):
        return [PYTHON, str(ROOT / "scripts" / run.program), *run.args, "--json", str(json_path)]
    state = state_file(mode, run)
    return [str(BUILD / "examples" / run.program), *run.args, "--json", str(json_path),
            *(["--state", str(state)] if state else [])]


def write_result(mode, run, report):
    write_atomically(run.result(mode), (json.dumps(report, indent=1) + "\n").encode())


def plan(mode, only, encoders=None):
    """The runs of the chosen experiments (and encoders) in order (test runs appear once their
    selection is complete). A pre-training runs before the first evaluation that needs it."""
    runs = []
    for job in mode.jobs:
        if (not only or job.experiment in only) and (not encoders or job.encoder in encoders):
            runs += job_runs(mode, job)
    return runs


def startable(mode, runs, busy):
    """The first of `runs` (in plan order) that can start while the runs named in `busy` run:
    an evaluation whose pre-training is missing gives that pre-training instead, and waits
    while another worker runs it. None when nothing can start now."""
    for run in runs:
        if run.done(mode):
            continue
        if not pretrained(mode, run):
            run = run.needs
        if (run.stage, run.name) not in busy:
            return run
    return None


def run_all(mode, only, encoders=None, jobs=1):
    """Runs what is not done, `jobs` runs at once (each with THREADS threads), in plan order.
    The plan is made again whenever a run ends: a finished selection adds its test runs. A
    failed run stops the others (a pre-training saves its checkpoint when stopped) and the
    protocol, naming its log."""
    for program in ("splitmask-pretrain", "splitmask-eval"):
        if not (BUILD / "examples" / program).exists():
            raise SystemExit(f"protocol.py: {BUILD / 'examples' / program} is not built "
                             "(cmake --build build --target splitmask_pretrain splitmask_eval)")
    changed = threading.Condition()
    busy, failures = set(), []  # busy: the (stage, name) of the runs going on

    def work(run):
        start = time.time()
        try:
            (pretrain if run.stage == "pretrain" else evaluate)(mode, run)
            log(mode, f"    done in {time.time() - start:.0f} s -> {run.result(mode)}")
        except BaseException as error:  # SystemExit from execute(), or anything unexpected
            failures.append(error)
        with changed:
            busy.discard((run.stage, run.name))
            changed.notify()

    with changed:
        while not failures:
            runs = plan(mode, only, encoders)
            todo = sum(not r.done(mode) for r in runs)
            if todo == 0 and not busy:
                break
            run = startable(mode, runs, busy) if len(busy) < jobs else None
            if run is None:
                changed.wait()
                continue
            number = len(runs) - todo + len(busy) + 1
            log(mode, f"[{number}/{len(runs)}+] {run.stage}/{run.name}"
                      + (f" ({len(busy) + 1} of {jobs} at once)" if jobs > 1 else ""))
            busy.add((run.stage, run.name))
            threading.Thread(target=work, args=(run,)).start()
        if failures:
            for child in list(RUNNING):
                child.terminate()
            while busy:
                changed.wait()
            raise failures[0]
    log(mode, "all done")


def saved_progress(path):
    """(step, steps) of a fine-tuning's saved state (splitmask-eval --state: a safetensors file
    whose header's metadata holds the step and the run's settings)."""
    with open(path, "rb") as f:
        metadata = read_safetensors_header(f)["__metadata__"]
    return int(metadata["step"]), json.loads(metadata["run"])["settings"]["--steps or --epochs"]


def status(mode):
    for experiment in EXPERIMENTS:
        runs = plan(mode, [experiment])
        done = sum(r.done(mode) for r in runs)
        print(f"{experiment}: {done} of the {len(runs)} runs known so far done")
    for path in sorted((mode.results / "unfinished").glob("*/*.state")):
        step, steps = saved_progress(path)
        print(f"unfinished: {path.parent.name}/{path.stem}, saved at step {step} of {steps}")
    for job in mode.jobs:
        if job.selected():
            config = chosen(mode, job.encoder, job.fraction)
            print(f"chosen for {job.encoder} at {job.fraction:g}: "
                  + (config_name(config) if config else "(selection not complete)"))


def accuracy(mode, stage, name, measure="finetune"):
    path = mode.results / stage / f"{name}.json"
    return json.loads(path.read_text())[measure]["accuracy"] if path.exists() else None


def mean_sd(values):
    """'mean ± s.d.' in percent over the seeds that are done, with their count when < 3."""
    values = [100 * v for v in values if v is not None]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 \
        else 0.0
    text = f"{mean:.1f} ± {sd:.1f}"
    return text if len(values) == len(SEEDS) else f"{text} ({len(values)} seed)"


def checkpoints_of(mode, name, fraction):
    """The checkpoint hashes recorded by the evaluations of encoder `name` at `fraction` (its
    selection, tests and frozen measures there)."""
    pattern = re.compile(re.escape(f"{name}-{fraction:g}") + r"(-lr.*|-seed[0-9]+)?")
    hashes = set()
    for stage in ("select", "test", "frozen"):
        for path in (mode.results / stage).glob(f"{name}-*.json"):
            if pattern.fullmatch(path.stem):
                h = json.loads(path.read_text()).get("provenance", {}).get("checkpoint_sha256")
                if h:
                    hashes.add(h)
    return hashes


def table(mode):
    """Markdown tables of what is done: test accuracy (mean ± s.d. of the seeds) by encoder and
    label fraction, the configuration chosen for each, and the frozen measures."""
    fractions = sorted({job.fraction for job in mode.jobs if job.fine_tuned()})
    names = []
    for job in mode.jobs:
        if job.fine_tuned() and job.encoder not in names:
            names.append(job.encoder)
    # A selection and its tests come from one pre-training; a pre-training made again (another
    # CPU or build: the first one's checkpoint was lost) may serve another label fraction.
    mixed = [f"{name} at {100 * f:g}%" for name in names for f in fractions
             if len(checkpoints_of(mode, name, f)) > 1]
    if mixed:
        print("**Results of different pre-trainings are mixed** (another CPU or build made the "
              f"checkpoint again) for: {', '.join(mixed)}\n")
    for name in names:
        used = {f: sorted(checkpoints_of(mode, name, f)) for f in fractions}
        if len({h for hashes in used.values() for h in hashes}) > 1:
            print(f"{name}'s label fractions come from different pre-trainings of the same "
                  "command: " + ", ".join(f"{100 * f:g}% from checkpoint {' and '.join(h)}"
                                         for f, h in used.items() if h) + ".\n")
    print("| encoder | " + " | ".join(f"{100 * f:g}% of the labels" for f in fractions) + " |")
    print("|---|" + "---:|" * len(fractions))
    for name in names:
        cells = [mean_sd([accuracy(mode, "test", f"{name}-{f:g}-seed{seed}") for seed in SEEDS])
                 for f in fractions]
        if any(c != "–" for c in cells):  # encoders with no test run yet are left out
            print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    scales = sorted([DEFAULT_MIN_SCALE, *mode.min_scales])
    print("| encoder | label fraction | chosen on held-out images | its validation accuracy | "
          "by crop scale " + " / ".join(f"{m:g}" for m in scales) + " |")
    print("|---|---:|---|---:|---:|")
    for job in mode.jobs:
        if not job.selected():
            continue
        config = chosen(mode, job.encoder, job.fraction)
        if config:
            prefix = f"{job.encoder}-{job.fraction:g}-"
            v = accuracy(mode, "select", prefix + config_name(config))
            by_scale = [accuracy(mode, "select", prefix + config_name(at_min_scale(config, m)))
                        for m in scales]
            print(f"| {job.encoder} | {100 * job.fraction:g}% | {config_name(config)} | "
                  f"{100 * v:.1f} | " + " / ".join(f"{100 * a:.1f}" for a in by_scale) + " |")
    frozen = [job for job in mode.jobs if job.frozen]
    if any((mode.results / "frozen" / f"{j.encoder}-{j.fraction:g}.json").exists() for j in frozen):
        print()
        print("| encoder | label fraction | k-NN | linear probe |")
        print("|---|---:|---:|---:|")
        for j in frozen:
            name = f"{j.encoder}-{j.fraction:g}"
            knn, linear = accuracy(mode, "frozen", name, "knn"), accuracy(mode, "frozen", name,
                                                                          "linear")
            shown = {"scratch": "random encoder", "pixels": "raw pixels"}.get(j.encoder,
                                                                              j.encoder)
            if knn is not None:
                print(f"| {shown} | {100 * j.fraction:g}% | {100 * knn:.1f} | "
                      f"{100 * linear:.1f} |")
    tokenizers(mode)
    wall_time(mode)


def wall_time(mode):
    """What the runs done so far cost: their count and hours by stage (a pre-training's over all
    its sittings), the machine's hours (runs made J at a time count 1/J each), and the CPUs
    they ran on."""
    hours, counts, cpus, machine = {}, {}, set(), 0.0
    for path in sorted(mode.results.glob("*/*.json")):
        report = json.loads(path.read_text())
        stage = path.parent.name
        seconds = report.get("training_seconds", report.get("seconds", 0.0))
        hours[stage] = hours.get(stage, 0.0) + seconds / 3600
        counts[stage] = counts.get(stage, 0) + 1
        origin = report.get("provenance", report)
        machine += seconds / 3600 / origin.get("runs_at_once", 1)
        if origin.get("cpu"):
            cpus.add(f"{origin['cpu']}, {origin.get('cores')} cores")
    if counts:
        total = sum(hours.values())
        shared = f" ({machine:.1f} h of the machine: some ran side by side)" \
            if machine < total - 0.05 else ""
        print()
        print("Runs done: " + ", ".join(f"{counts[s]} {s} ({hours[s]:.1f} h)" for s in counts)
              + f"; {total:.1f} h in all{shared}, on " + "; ".join(sorted(cpus)) + ".")


def tokenizers(mode):
    """The tokenizer experiment's table: for each pre-training, its decoder's loss on the
    near-uniform targets and on the others (target_loss.py), and fine-tuning at the
    experiment's label fraction."""
    jobs = [j for j in mode.jobs if j.experiment == "tokenizers"]
    reports = {j.encoder: json.loads(path.read_text()) for j in jobs if j.targets
               and (path := mode.results / "targets" / f"{j.encoder}.json").exists()}
    if not reports:
        return
    fraction = min(j.fraction for j in jobs if j.fine_tuned())
    threshold = next(iter(reports.values()))["threshold"]
    def words(name, r):
        kind = ("random patches" if option_value(mode.pretrainings[name], "--kmeans-iterations")
                == "0" else "k-means")
        if "--distinct-words" in mode.pretrainings[name]:
            kind += " from distinct draws"
        return f"{name}: {kind}, {r['vocabulary']} words"

    print()
    print(f"| tokenizer | distinct words (copies of one) | words used | target entropy (bits) | "
          f"5 commonest words | near-uniform (pixel s.d. < {threshold:g}) | of them all black "
          "| 90% of them on |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in reports.items():
        t, flat = r["tokens"], r["tokens"]["near_uniform"][0]
        group = t.get("largest_copy_group", 1)
        copies = f"{t['distinct_words']} ({group if group > 1 else 'none'})" \
            if "distinct_words" in t else "–"
        print(f"| {words(name, r)} | {copies} | {t['words_used']} | {t['entropy_bits']:.2f} of "
              f"{t['max_entropy_bits']:g} | {100 * t['top5_share']:.1f}% | "
              f"{100 * flat['share']:.1f}% | {100 * flat['black_share']:.0f}% | "
              f"{flat['words_for_90_percent']} word"
              f"{'' if flat['words_for_90_percent'] == 1 else 's'} |")
    print()
    print("| tokenizer | near-uniform: cross-entropy / entropy (nats) | the others: cross-entropy "
          f"/ entropy | the others' top-1 | fine-tuned, {100 * fraction:g}% of the labels |")
    print("|---|---:|---:|---:|---:|")
    for name, r in reports.items():
        flat, others = r["near_uniform"], r["others"]
        runs = [accuracy(mode, "test", f"{name}-{fraction:g}-seed{seed}") for seed in SEEDS]
        print(f"| {words(name, r)} | {flat['cross_entropy']:.2f} / {flat['target_entropy']:.2f} "
              f"| {others['cross_entropy']:.2f} / {others['target_entropy']:.2f} | "
              f"{100 * others['top1']:.1f}% | {mean_sd(runs)} |")


COLOURS = {"scratch": "#777777", "splitmask": "#d62728", "splitmask-lambda0": "#ff7f0e",
           "splitmask-lambda0.1": "#bcbd22",
           "beit": "#1f77b4"}
LABELS = {"scratch": "from scratch", "splitmask": "SplitMask",
          "splitmask-lambda0": "SplitMask without InfoNCE",
          "splitmask-lambda0.1": "SplitMask, InfoNCE weight 0.1", "beit": "BEiT"}


def test_point(mode, name, fraction):
    """(mean, s.d.) in percent of the test seeds that are done, or None."""
    values = [accuracy(mode, "test", f"{name}-{fraction:g}-seed{seed}") for seed in SEEDS]
    values = [100 * v for v in values if v is not None]
    if not values:
        return None
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 \
        else 0.0
    return mean, sd


def option_value(args, option):
    return args[args.index(option) + 1] if option in args else None


def charts(mode, folder):
    """The charts of docs/results.md from what is done: accuracy by label fraction, by
    pre-training set size, and by pre-training length. Returns the files written."""
    from svg_chart import Series, line_chart
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fractions = sorted({j.fraction for j in mode.jobs if j.fine_tuned()})
    ticks = [(f, f"{100 * f:g}%") for f in fractions]
    series = []
    for name in ["scratch", "splitmask", "splitmask-lambda0", "splitmask-lambda0.1", "beit"]:
        pts = [(f, *p) for f in fractions if (p := test_point(mode, name, f))]
        if pts:
            series.append(Series(LABELS[name], COLOURS[name], pts))
    if line_chart(folder / "compare.svg", "Fine-tuning accuracy by labels used (mean ± s.d., 3 seeds)",
                  "labels used", "test accuracy (%)", series, x_log=True, x_ticks=ticks):
        written.append(folder / "compare.svg")

    sizes = {}
    for name, args in mode.pretrainings.items():
        if name == "splitmask" or (name.startswith("splitmask-") and name[10:].isdigit()):
            limit = option_value(args, "--train-limit")
            sizes[name] = int(limit) if limit else 60000
    series, references = [], []
    for f, colour in zip(sorted({j.fraction for j in mode.jobs if j.experiment == "samples"}),
                         ["#d62728", "#9467bd"]):
        pts = [(n, *p) for name, n in sizes.items() if (p := test_point(mode, name, f))]
        if pts:
            series.append(Series(f"SplitMask, {100 * f:g}% of the labels", colour, pts))
        if (p := test_point(mode, "scratch", f)):
            references.append((f"from scratch, {100 * f:g}%", colour, p[0]))
    if series and line_chart(
            folder / "samples.svg", "Pre-training set size, the same number of steps",
            "images pre-trained on", "test accuracy (%)", series, x_log=True,
            x_ticks=[(n, f"{n:,}".replace(",", " ")) for n in sorted(set(sizes.values()))],
            references=references):
        written.append(folder / "samples.svg")

    steps = {}
    for name, args in mode.pretrainings.items():
        if name.startswith("splitmask-3000") or (mode.short and name == "splitmask-1000"):
            steps[name] = int(option_value(args, "--steps"))
    series = []
    f = 0.1
    fine = [(n, *p) for name, n in steps.items() if (p := test_point(mode, name, f))]
    if fine:
        series.append(Series(f"fine-tuned, {100 * f:g}% of the labels", "#d62728", fine))
    for measure, label, colour in (("knn", "k-NN", "#2ca02c"), ("linear", "linear probe", "#1f77b4")):
        pts = [(n, 100 * a, 0.0) for name, n in steps.items()
               if (a := accuracy(mode, "frozen", f"{name}-{f:g}", measure)) is not None]
        if pts:
            series.append(Series(f"{label}, frozen, {100 * f:g}%", colour, pts))
    if series and line_chart(
            folder / "schedule.svg", "Pre-training length on 5% of the images",
            "pre-training steps", "test accuracy (%)", series, x_log=True,
            x_ticks=[(n, str(n)) for n in sorted(steps.values())]):
        written.append(folder / "schedule.svg")
    written += selection_charts(mode, folder)
    return written


def selection_charts(mode, folder):
    """For each label fraction, the held-out accuracy of each selected encoder against the
    fine-tuning epochs, at the learning rate and layer decay chosen for it: where the curve
    flattens or turns down, longer training stopped helping."""
    from svg_chart import Series, line_chart
    written = []
    for fraction in sorted({j.fraction for j in mode.jobs if j.selected()}):
        series, epochs = [], set()
        for job in mode.jobs:
            if not (job.selected() and job.fraction == fraction):
                continue
            config = chosen(mode, job.encoder, fraction)
            if config is None:
                continue
            pts = []
            for tried in selection(mode, job.encoder, fraction)[0]:
                if (tried["lr"], tried["layer_decay"]) == (config["lr"], config["layer_decay"]) \
                        and "min_scale" not in tried:
                    name = f"{job.encoder}-{fraction:g}-{config_name(tried)}"
                    pts.append((tried["epochs"], 100 * accuracy(mode, "select", name), 0.0))
                    epochs.add(tried["epochs"])
            label = (f"{LABELS.get(job.encoder, job.encoder)} (lr {config['lr']:g}, "
                     f"decay {config['layer_decay']:g})")
            series.append(Series(label, COLOURS.get(job.encoder, "#8c564b"), sorted(pts)))
        path = folder / f"select-{fraction:g}.svg"
        if series and line_chart(
                path, f"Held-out accuracy by fine-tuning epochs, {100 * fraction:g}% of the labels",
                "epochs", "validation accuracy (%)", series, x_log=True,
                x_ticks=[(e, str(e)) for e in sorted(epochs)]):
            written.append(path)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "status", "list", "table"])
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS)
    parser.add_argument("--encoders", nargs="+", metavar="NAME",
                        help="run: only the jobs of these encoders (scratch, splitmask, ...)")
    parser.add_argument("--svg", metavar="DIR", help="table: also draw the charts into DIR")
    parser.add_argument("--jobs", type=int, default=1, metavar="J",
                        help="run: J runs at once, the cores shared among them (on 2 cores, 2 "
                             "runs of 1 thread do about a third more work than 1 of 2)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    global THREADS, JOBS
    JOBS = args.jobs
    if JOBS > 1 and THREADS == "0":
        THREADS = str(max(1, (os.cpu_count() or 1) // JOBS))
    mode = Mode(args.short)
    if args.command == "list":
        for job in mode.jobs:
            print(job.label())
    elif args.command == "status":
        status(mode)
    elif args.command == "table":
        table(mode)
        if args.svg:
            for path in charts(mode, args.svg):
                print(f"chart -> {path}")
    else:
        if args.short and mode.work.exists():
            shutil.rmtree(mode.work)  # the short check always runs from nothing
        run_all(mode, args.only, args.encoders, args.jobs)


if __name__ == "__main__":
    main()
