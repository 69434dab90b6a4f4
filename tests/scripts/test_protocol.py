"""scripts/protocol.py's selection rule and time accounting on made-up results (no program
runs): python3 tests/scripts/test_protocol.py; exit status 1 on a failure."""
import json
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

    def result(self, lr, decay, epochs, accuracy):
        config = {"lr": lr, "layer_decay": decay, "epochs": epochs}
        name = f"enc-{self.fraction:g}-{protocol.config_name(config)}"
        path = self.mode.results / "select" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"finetune": {"accuracy": accuracy}}))

    def grid(self, accuracy_of):
        for config in protocol.configs(self.mode, self.fraction):
            self.result(config["lr"], config["layer_decay"], config["epochs"], accuracy_of(config))

    def select(self):
        return protocol.selection(self.mode, "enc", self.fraction)

    def test_nothing_is_chosen_while_a_grid_point_is_missing(self):
        self.result(1e-3, 0.75, 100, 0.9)
        wanted, chosen = self.select()
        self.assertIsNone(chosen)
        self.assertEqual(len(wanted), 12)

    def test_the_best_wins_and_a_shorter_winner_is_not_extended(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["epochs"]) == (2e-3, 100) else 0.7)
        wanted, chosen = self.select()
        self.assertEqual(len(wanted), 12)
        self.assertEqual(chosen["epochs"], 100)
        self.assertEqual(chosen["lr"], 2e-3)

    def test_ties_go_to_fewer_epochs(self):
        self.grid(lambda c: 0.8 if c["lr"] == 1e-3 and c["layer_decay"] == 1 else 0.7)
        _, chosen = self.select()
        self.assertEqual((chosen["lr"], chosen["layer_decay"], chosen["epochs"]), (1e-3, 1, 100))

    def test_a_winner_at_the_longest_run_is_doubled_until_longer_stops_helping(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["layer_decay"], c["epochs"]) == (2e-3, 0.75, 300)
                  else 0.7)
        wanted, chosen = self.select()
        self.assertIsNone(chosen)  # 600 epochs must run first
        self.assertEqual(wanted[-1], {"lr": 2e-3, "layer_decay": 0.75, "epochs": 600})
        self.result(2e-3, 0.75, 600, 0.79)  # worse: 300 stays
        wanted, chosen = self.select()
        self.assertEqual(chosen["epochs"], 300)
        self.assertEqual(len(wanted), 13)

    def test_doubling_stops_at_the_fractions_cap(self):
        self.grid(lambda c: 0.8 if (c["lr"], c["layer_decay"], c["epochs"]) == (2e-3, 0.75, 300)
                  else 0.7)
        self.result(2e-3, 0.75, 600, 0.81)
        self.result(2e-3, 0.75, 1200, 0.82)  # the 1% cap: no 2400
        wanted, chosen = self.select()
        self.assertEqual(chosen["epochs"], 1200)
        self.assertEqual(max(c["epochs"] for c in wanted), 1200)


class TrainingTime(unittest.TestCase):
    def test_sittings_add_up(self):
        records = [{"elapsed_s": 1}, {"elapsed_s": 50}, {"elapsed_s": 2}, {"elapsed_s": 30},
                   {"step": 9}]
        self.assertEqual(protocol.training_seconds(records), 80)


if __name__ == "__main__":
    unittest.main()
