"""scripts/protocol.py's selection rule and time accounting on made-up results, and its runs
side by side (--jobs) with stand-in programs: python3 tests/scripts/test_protocol.py; exit
status 1 on a failure."""
import contextlib
import io
import json
import os
import pathlib
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
import protocol  # noqa: E402


class Selection(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.mode = protocol.Mode(short=False)
        self.mode.results = pathlib.Path(self.folder.name)
        self.fraction = 0.01

    def tearDown(self):
        self.folder.cleanup()

    def write(self, config, accuracy):
        name = f"enc-{self.fraction:g}-{protocol.config_name(config)}"
        path = self.mode.results / "select" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"finetune": {"accuracy": accuracy}}))

    def result(self, lr, decay, epochs, accuracy):
        self.write({"lr": lr, "layer_decay": decay, "epochs": epochs}, accuracy)

    def grid(self, accuracy_of):
        for config in protocol.configs(self.mode, self.fraction):
            self.result(config["lr"], config["layer_decay"], config["epochs"], accuracy_of(config))

    def crops(self, accuracy=0.0):
        """Runs the crop scales the selection asks for (each at `accuracy`); returns them."""
        wanted = [c for c in self.select()[0] if "min_scale" in c]
        for config in wanted:
            self.write(config, accuracy)
        return wanted

    def select(self):
        return protocol.selection(self.mode, "enc", self.fraction)

    def test_nothing_is_chosen_while_a_grid_point_is_missing(self):
        self.result(1e-3, 0.75, 100, 0.9)
        wanted, chosen = self.select()
        self.assertIsNone(chosen)
        self.assertEqual(len(wanted), 12)

    def test_the_best_wins_and_a_shorter_winner_is_not_extended(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["epochs"]) == (2e-3, 100) else 0.7)
        self.crops()
        wanted, chosen = self.select()
        self.assertEqual(len(wanted), 12 + 2)
        self.assertEqual(chosen, {"lr": 2e-3, "layer_decay": 0.75, "epochs": 100})

    def test_ties_go_to_fewer_epochs(self):
        self.grid(lambda c: 0.8 if c["lr"] == 1e-3 and c["layer_decay"] == 1 else 0.7)
        self.crops()
        _, chosen = self.select()
        self.assertEqual((chosen["lr"], chosen["layer_decay"], chosen["epochs"]), (1e-3, 1, 100))

    def test_a_winner_at_the_longest_run_is_doubled_until_longer_stops_helping(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["layer_decay"], c["epochs"]) == (2e-3, 0.75, 300)
                  else 0.7)
        wanted, chosen = self.select()
        self.assertIsNone(chosen)  # 600 epochs must run first
        self.assertEqual(wanted[-1], {"lr": 2e-3, "layer_decay": 0.75, "epochs": 600})
        self.result(2e-3, 0.75, 600, 0.79)  # worse: 300 stays
        self.crops()
        wanted, chosen = self.select()
        self.assertEqual(chosen["epochs"], 300)
        self.assertEqual(len(wanted), 13 + 2)

    def test_doubling_stops_at_the_fractions_cap(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["layer_decay"], c["epochs"]) == (2e-3, 0.75, 300)
                  else 0.7)
        self.result(2e-3, 0.75, 600, 0.81)
        self.result(2e-3, 0.75, 1200, 0.82)  # the 1% cap: no 2400
        self.crops()
        wanted, chosen = self.select()
        self.assertEqual(chosen["epochs"], 1200)
        self.assertEqual(max(c["epochs"] for c in wanted), 1200)

    def test_the_crop_scale_comes_last_and_ties_go_to_the_default(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["layer_decay"], c["epochs"]) == (2e-3, 1, 100)
                  else 0.7)
        wanted, chosen = self.select()
        self.assertIsNone(chosen)  # the crop scales must run first, with the best of the rest
        best = {"lr": 2e-3, "layer_decay": 1, "epochs": 100}
        self.assertEqual(wanted[-2:], [dict(best, min_scale=s) for s in self.mode.min_scales])
        self.assertIn("--min-scale 0.8", " ".join(protocol.finetune_args(self.mode, 0.01, best, 0)))
        self.crops(0.8)  # a tie: the default (no min_scale) stays
        self.assertEqual(self.select()[1], best)
        self.write(dict(best, min_scale=1.0), 0.81)
        chosen = self.select()[1]
        self.assertEqual(chosen, dict(best, min_scale=1.0))
        self.assertIn("--min-scale 1", " ".join(protocol.finetune_args(self.mode, 0.01, chosen,
                                                                        0)))


class Provenance(unittest.TestCase):
    """table: a selection and its tests come from one pre-training; label fractions may come
    from two pre-trainings of one command (the first one lost with its machine), said so."""

    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.mode = protocol.Mode(short=False)
        self.mode.results = pathlib.Path(self.folder.name)

    def tearDown(self):
        self.folder.cleanup()

    def write(self, stage, name, checkpoint):
        path = self.mode.results / stage / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"finetune": {"accuracy": 0.8},
                                    "provenance": {"checkpoint_sha256": checkpoint}}))

    def table(self):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            protocol.table(self.mode)
        return printed.getvalue()

    def test_fractions_from_two_pre_trainings_are_named_and_a_mix_within_one_is_flagged(self):
        self.write("test", "splitmask-0.01-seed0", "aaaa")
        self.write("select", "splitmask-0.1-lr0.001-ld1-ep30", "bbbb")
        self.write("test", "splitmask-0.1-seed0", "bbbb")
        printed = self.table()
        self.assertIn("splitmask's label fractions come from different pre-trainings of the same "
                      "command: 1% from checkpoint aaaa, 10% from checkpoint bbbb.", printed)
        self.assertNotIn("mixed", printed)
        self.write("select", "splitmask-0.1-lr0.002-ld1-ep30", "aaaa")
        self.assertIn("mixed** (another CPU or build made the checkpoint again) for: "
                      "splitmask at 10%\n", self.table())


class TrainingTime(unittest.TestCase):
    def test_sittings_add_up(self):
        records = [{"elapsed_s": 1}, {"elapsed_s": 50}, {"elapsed_s": 2}, {"elapsed_s": 30},
                   {"step": 9}]
        self.assertEqual(protocol.training_seconds(records), 80)


# Stand-ins for the two programs: they note when they start and end, and write what
# protocol.py reads (a checkpoint and its metrics; an evaluation's JSON). Each stays until
# another is running too (at most 2 s), so that runs side by side overlap even on a loaded
# machine; then a failing one ends at once, the others 0.3 s later.
FAKE_PROGRAM = """#!{python}
import json, os, pathlib, sys, time
args = sys.argv[1:]
def value(option):
    return args[args.index(option) + 1]
name = pathlib.Path(value("--out") if "--out" in args else value("--json")).name
status = int(os.environ.get("FAIL_" + name.replace("-", "_").replace(".", "_"), "0"))
trace = pathlib.Path({trace!r})
with open(trace, "a") as f:
    f.write(f"start {{name}}\\n")
deadline = time.time() + 2
while time.time() < deadline:
    events = [line.split()[0] for line in trace.read_text().splitlines()]
    if events.count("start") - events.count("end") >= 2:
        break
    time.sleep(0.01)
time.sleep(0 if status else 0.3)
if "--out" in args:
    out = pathlib.Path(value("--out"))
    out.mkdir(parents=True, exist_ok=True)
    # A checkpoint's layout: an encoder tensor between two that are not the encoder's.
    header = {{"__metadata__": {{"groups": json.dumps({{"encoder": ["w"]}}), "step": "20"}},
              "decoder": {{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
              "w": {{"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
              "optimizer.w": {{"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}}}
    text = json.dumps(header).encode()
    (out / "checkpoint.safetensors").write_bytes(
        len(text).to_bytes(8, "little") + text + b"DECOencoOPTI")
    (out / "metrics.jsonl").write_text(json.dumps({{"elapsed_s": 0.3}}) + "\\n")
else:
    pathlib.Path(value("--json")).write_text(json.dumps({{"finetune": {{"accuracy": 0.5}}}}))
with open(trace, "a") as f:
    f.write(f"end {{name}}\\n")
sys.exit(status)
"""


class RunsAtOnce(unittest.TestCase):
    """run --jobs: runs side by side, a pre-training before what reads its checkpoint."""

    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        root = pathlib.Path(self.folder.name)
        self.trace = root / "trace"
        (root / "build" / "examples").mkdir(parents=True)
        for program in ("splitmask-pretrain", "splitmask-eval"):
            path = root / "build" / "examples" / program
            path.write_text(FAKE_PROGRAM.format(python=sys.executable, trace=str(self.trace)))
            path.chmod(0o755)
        self.saved = protocol.BUILD, protocol.JOBS
        protocol.BUILD = root / "build"
        self.mode = protocol.Mode(short=True)
        self.mode.work, self.mode.results = root / "work", root / "results"
        self.mode.jobs = [protocol.Job("compare", "scratch", 0.1),
                          protocol.Job("compare", "splitmask", 0.1)]

        self.quiet = contextlib.redirect_stdout(io.StringIO())  # protocol.log's lines
        self.quiet.__enter__()

    def tearDown(self):
        self.quiet.__exit__(None, None, None)
        protocol.BUILD, protocol.JOBS = self.saved
        self.folder.cleanup()

    def events(self):
        return [line.split() for line in self.trace.read_text().splitlines()]

    def test_a_run_that_needs_a_busy_pre_training_waits(self):
        runs = protocol.plan(self.mode, None)
        first = protocol.startable(self.mode, runs, set())
        self.assertEqual((first.stage, first.name), ("select", "scratch-0.1-lr0.001-ld0.75-ep2"))
        splitmask = [r for r in runs if r.name.startswith("splitmask")]
        self.assertEqual(protocol.startable(self.mode, splitmask, set()).stage, "pretrain")
        self.assertIsNone(protocol.startable(self.mode, splitmask, {("pretrain", "splitmask")}))

    def test_two_at_once_finish_every_run(self):
        protocol.run_all(self.mode, None, jobs=2)
        events = self.events()
        running, most = set(), 0
        for kind, name in events:
            if kind == "start":
                self.assertNotIn(name, running)
                if name.startswith("splitmask-") and name != "pretrain-splitmask":
                    self.assertIn(["end", "pretrain-splitmask"], events[:events.index([kind, name])])
                running.add(name)
                most = max(most, len(running))
            else:
                running.remove(name)
        self.assertEqual(most, 2)
        self.assertEqual(sum(e == ["start", "pretrain-splitmask"] for e in events), 1)
        # The grid of 4, one doubled run (equal accuracies: the shortest is the best and the
        # longest of its pair), one crop scale, then 3 test seeds: 9 evaluations per encoder.
        self.assertEqual(len(events), 2 * (1 + 2 * 9))
        self.assertTrue(all(r.done(self.mode) for r in protocol.plan(self.mode, None)))

    def test_the_encoder_is_kept_with_the_results_and_read_from_there(self):
        protocol.run_all(self.mode, None, jobs=2)
        kept = self.mode.results / "encoders" / "splitmask.safetensors"
        data = kept.read_bytes()
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        self.assertEqual(size % 8, 0)
        self.assertEqual(set(header), {"__metadata__", "w"})
        self.assertEqual(header["__metadata__"]["step"], "20")
        self.assertEqual(header["w"]["data_offsets"], [0, 4])
        self.assertEqual(data[8 + size:], b"enco")
        pretraining = json.loads((self.mode.results / "pretrain" / "splitmask.json").read_text())
        self.assertEqual(pretraining["encoder_sha256"], protocol.sha256(kept))
        test = json.loads((self.mode.results / "test" / "splitmask-0.1-seed0.json").read_text())
        self.assertEqual(test["provenance"]["encoder_sha256"], pretraining["encoder_sha256"])
        self.assertEqual(test["provenance"]["checkpoint_sha256"],
                         pretraining["checkpoint_sha256"])
        # Another session: runs/ is gone, the results (and the encoder) are there. An evaluation
        # of SplitMask starts at once, from the kept encoder, without pre-training again.
        for path in sorted(self.mode.work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (self.mode.results / "test" / "splitmask-0.1-seed0.json").unlink()
        run = protocol.startable(self.mode, protocol.plan(self.mode, None), set())
        self.assertEqual((run.stage, run.name), ("test", "splitmask-0.1-seed0"))
        self.assertIn(str(kept), protocol.evaluation_command(self.mode, run, "x.json"))
        # Without the kept encoder the pre-training comes first.
        kept.unlink()
        run = protocol.startable(self.mode, protocol.plan(self.mode, None), set())
        self.assertEqual((run.stage, run.name), ("pretrain", "splitmask"))

    def test_a_fine_tuning_keeps_its_state_with_the_results(self):
        runs = {r.stage: r for r in protocol.plan(self.mode, None)}
        select = runs["select"]
        command = protocol.evaluation_command(self.mode, select, "x.json")
        state = self.mode.results / "unfinished" / "select" / f"{select.name}.state"
        self.assertEqual(command[-2:], ["--state", str(state)])
        self.assertIn("--mode finetune", " ".join(command))
        frozen = protocol.Run("frozen", "splitmask-0.1", "splitmask-eval", ["--mode", "frozen"])
        self.assertNotIn("--state", protocol.evaluation_command(self.mode, frozen, "x.json"))

    def test_status_shows_a_saved_fine_tuning(self):
        # A state file as splitmask-eval writes it: a safetensors header with its metadata.
        header = json.dumps({"__metadata__": {
            "format": "splitmask-finetune-state", "step": "151",
            "run": json.dumps({"settings": {"--steps or --epochs": 402}})}}).encode()
        state = self.mode.results / "unfinished" / "select" / "scratch-0.1-lr0.001-ld1-ep2.state"
        state.parent.mkdir(parents=True)
        state.write_bytes(len(header).to_bytes(8, "little") + header)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            protocol.status(self.mode)
        self.assertIn("unfinished: select/scratch-0.1-lr0.001-ld1-ep2, saved at step 151 of 402",
                      printed.getvalue())

    def test_a_failed_run_stops_the_protocol(self):
        os.environ["FAIL_scratch_0_1_lr0_001_ld0_75_ep2_json"] = "1"
        try:
            with self.assertRaises(SystemExit) as raised:
                protocol.run_all(self.mode, None, jobs=2)
        finally:
            del os.environ["FAIL_scratch_0_1_lr0_001_ld0_75_ep2_json"]
        self.assertIn("scratch-0.1-lr0.001-ld0.75-ep2 failed", str(raised.exception))
        self.assertEqual(sum(kind == "start" for kind, _ in self.events()), 2)  # none after


if __name__ == "__main__":
    unittest.main()
