#!/usr/bin/python3
"""How well a SplitMask checkpoint's decoder predicts its targets, on near-uniform patches and
on the others (issue 17's tokenizer experiment): a trivially predictable target flatters the
pre-training loss, so the loss on the other patches is the figure that says what was learned.

Each image (un-augmented, normalised with the run's data statistics) is split at random into two
disjoint subsets of the run's sizes; the encoder runs on each, the decoder predicts the other
subset's token ids, and every prediction is scored (cross-entropy in nats, top-1). The ids come
from the checkpoint's tokenizer as scripts/token_targets.py computes them, and a patch is
near-uniform when the s.d. of its raw pixels (0..1) is below --threshold. Beside each group's
cross-entropy stands the entropy of its targets: the loss of a predictor that knows only the
group's word frequencies, so "entropy - cross-entropy" is what the context taught.

The model is rebuilt in PyTorch from examples/python/load_checkpoint.py's encoder and a decoder
as splitmask builds it (tests/golden/make_splitmask_fixture.py is its reference), so this is also
an independent check of the pretrainer's logged loss.

    /usr/bin/python3 scripts/target_loss.py --checkpoint runs/x/checkpoint.safetensors
        [--images 10000] [--data /usr/share/datasets/fashion-mnist] [--json out.json]

Uses the first N training images (the test split is not read)."""
import argparse
import fractions
import json
import math
import os
import pathlib
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path[:0] = [str(HERE), str(HERE.parent / "examples" / "python")]
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from load_checkpoint import (Block, Encoder, load_encoder, read_safetensors,  # noqa: E402
                             sincos_position)
from token_targets import (assign, census, entropy_bits, patches_of,  # noqa: E402
                           read_idx_images)


class Decoder(nn.Module):
    """splitmask's masked decoder: the encoded tokens, embedded, at their positions and the mask
    token at every other one, plus fixed sin-cos positions; pre-norm blocks, norm, prediction."""

    def __init__(self, config, objective, vocabulary):
        super().__init__()
        dd, eps = objective["decoder_width"], config["layer_norm_eps"]
        grid = config["image_size"] // config["patch_size"]
        self.decoder_embed = nn.Linear(config["width"], dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pos_embed", sincos_position(dd, grid), persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, objective["decoder_heads"], config["mlp_ratio"] * dd, eps)
            for _ in range(objective["decoder_depth"]))
        self.decoder_norm = nn.LayerNorm(dd, eps=eps)
        self.decoder_pred = nn.Linear(dd, vocabulary)

    def forward(self, encoded, index_in, index_out):
        y = self.decoder_embed(encoded)
        b, dd = y.shape[0], y.shape[-1]
        x = self.mask_token.expand(b, self.decoder_pos_embed.shape[0], dd).clone()
        x = x.scatter(1, index_in.unsqueeze(-1).expand(-1, -1, dd), y) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_norm(x)
        return self.decoder_pred(torch.gather(x, 1, index_out.unsqueeze(-1).expand(-1, -1, dd)))


def encode_subset(encoder, images, index):
    """The encoder on the patches at `index` alone (what SplitMask's branches see)."""
    x = encoder.patch_embed.proj(images).flatten(2).transpose(1, 2) + encoder.pos_embed
    x = torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    for block in encoder.blocks:
        x = block(x)
    return encoder.norm(x)


def load_decoder(config, objective, vocabulary, tensors):
    decoder = Decoder(config, objective, vocabulary)
    decoder.load_state_dict({name: tensors[name] for name in decoder.state_dict()}, strict=True)
    return decoder.eval()


def check(path):
    """Exit status 0 when this model gives the golden fixture's CE_A and CE_B (its independent
    PyTorch reference, which the C++ objective is tested against), 1 otherwise."""
    fixture = json.loads(pathlib.Path(path).read_text())
    c = fixture["config"]

    def tensor(entry, dtype=torch.float32):
        return torch.tensor(entry["data"], dtype=dtype).reshape(entry["shape"])

    config = {k: c[k] for k in ("image_size", "channels", "patch_size", "width", "depth",
                                "heads", "mlp_ratio", "layer_norm_eps")}
    config["position"] = "sincos"
    assert c["decoder_mlp_ratio"] == c["mlp_ratio"]  # splitmask's decoder takes the encoder's
    objective = {"decoder_width": c["decoder_width"], "decoder_depth": c["decoder_depth"],
                 "decoder_heads": c["decoder_heads"]}
    tensors = {name: tensor(entry) for name, entry in fixture["parameters"].items()}
    encoder = Encoder(config)
    encoder.load_state_dict({name: tensors[name] for name in encoder.state_dict()}, strict=True)
    decoder = load_decoder(config, objective, c["vocabulary_size"], tensors)
    inputs = fixture["inputs"]
    images = tensor(inputs["images"])
    a, b = tensor(inputs["index_a"], torch.int64), tensor(inputs["index_b"], torch.int64)
    ids = tensor(inputs["ids"], torch.int64)
    worst = 0.0
    with torch.no_grad():
        for name, index_in, index_out in (("ce_a", a, b), ("ce_b", b, a)):
            logits = decoder(encode_subset(encoder, images, index_in), index_in, index_out)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                 torch.gather(ids, 1, index_out).reshape(-1)).item()
            expected = fixture["outputs"][name]
            worst = max(worst, abs(ce - expected) / abs(expected))
            print(f"{name}: {ce:.7f}, the reference {expected:.7f}")
    print(f"largest relative difference {worst:.1e} (tolerance 1e-5)")
    return 0 if worst <= 1e-5 else 1


def score(encoder, decoder, images, ids, n_a):
    """(cross-entropy, hit) of every target (B, N): each image split at random into n_a and
    N - n_a patches, each half's encoding predicting the other half's ids."""
    n, k = ids.shape[1], decoder.decoder_pred.out_features
    losses = np.empty_like(ids, dtype=np.float64)
    hits = np.empty_like(ids, dtype=bool)
    ids_t = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        for begin in range(0, len(ids), 500):
            end = min(begin + 500, len(ids))
            batch = torch.from_numpy(images[begin:end])
            order = torch.stack([torch.randperm(n) for _ in range(end - begin)])
            a, b = order[:, :n_a].sort(dim=1).values, order[:, n_a:].sort(dim=1).values
            rows = np.arange(begin, end)[:, None]
            for index_in, index_out in ((a, b), (b, a)):
                logits = decoder(encode_subset(encoder, batch, index_in), index_in, index_out)
                target = torch.gather(ids_t[begin:end], 1, index_out)
                ce = F.cross_entropy(logits.reshape(-1, k), target.reshape(-1), reduction="none")
                losses[rows, index_out.numpy()] = ce.reshape(target.shape).numpy()
                hits[rows, index_out.numpy()] = (logits.argmax(-1) == target).numpy()
    return losses, hits


def training_loss(path):
    """The mean of CE_A and CE_B over the last 100 records of a run's metrics.jsonl, or None."""
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines()]
    ce = [(r["ce_a"] + r["ce_b"]) / 2 for r in records if "ce_a" in r and "ce_b" in r][-100:]
    return sum(ce) / len(ce) if ce else None


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--check", metavar="FIXTURE",
                        help="instead: compare this model with tests/golden/"
                             "splitmask_fixture.json's reference (exit status 1 if it differs)")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--images", type=int, default=10000, help="the first N training images")
    parser.add_argument("--threshold", type=float, default=0.02,
                        help="a patch is near-uniform when its pixels' s.d. is below this")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random splits")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")) or 1)
    torch.manual_seed(args.seed)

    if args.check:
        return check(args.check)
    if not args.checkpoint:
        parser.error("--checkpoint is required (or --check FIXTURE)")
    encoder, meta = load_encoder(args.checkpoint)
    if meta.get("objective") != "splitmask":
        raise SystemExit(f"{args.checkpoint}: a {meta.get('objective')} checkpoint; this "
                         "measures SplitMask's decoder only")
    tensors, _ = read_safetensors(args.checkpoint)
    config, objective = meta["encoder"], meta["objective_config"]
    vocabulary = tensors["tokenizer.vocabulary"].numpy()
    k, p = vocabulary.shape[0], config["patch_size"]
    grid = config["image_size"] // p
    decoder = load_decoder(config, objective, k, tensors)

    # Inputs and targets, as the pretrainer makes them (token_targets.py's rule for the ids).
    raw = read_idx_images(args.data, args.images, False)
    if raw.shape[1] != config["channels"] or raw.shape[2] != config["image_size"]:
        raise SystemExit(f"{args.data}: images of {raw.shape[1:]} do not fit {config}")
    stats, c = meta["run"]["data_stats"], config["channels"]
    mean = np.array(stats["mean"], np.float32).reshape(1, c, 1, 1)
    std = np.array(stats["std"], np.float32).reshape(1, c, 1, 1)
    images = (raw - mean) / std
    n = grid * grid
    ids = assign(raw, vocabulary, config, stats, meta["tokenizer"])[1].reshape(-1, n)
    raw_patches = patches_of(raw, p)
    flat = (raw_patches.std(axis=1) < args.threshold).reshape(-1, n)

    ratio = fractions.Fraction(objective["mask_ratio"])
    losses, hits = score(encoder, decoder, images, ids, n * ratio.numerator // ratio.denominator)

    def group(mask):
        return {"share": float(mask.mean()), "cross_entropy": float(losses[mask].mean()),
                "target_entropy": entropy_bits(ids[mask], k) * math.log(2),
                "top1": float(hits[mask].mean())}

    report = {"checkpoint": args.checkpoint, "step": int(meta["step"]),
              "images": int(len(ids)), "vocabulary": int(k), "threshold": args.threshold,
              "all": group(np.ones_like(flat)), "near_uniform": group(flat),
              "others": group(~flat),
              "tokens": census(ids.ravel(), raw_patches, k, [args.threshold])}
    # Copies among the words: a copy after the first never wins a patch (ties: lowest id).
    _, copies = np.unique(vocabulary, axis=0, return_counts=True)
    report["tokens"]["distinct_words"] = int(len(copies))
    report["tokens"]["largest_copy_group"] = int(copies.max())
    print(f"{report['images']} training images (un-augmented), step {report['step']}, {k} words;"
          f" near-uniform: pixel s.d. < {args.threshold:g}")
    print("| targets | share | cross-entropy (nats) | entropy of the targets | top-1 |")
    print("|---|---:|---:|---:|---:|")
    for name in ("all", "near_uniform", "others"):
        g = report[name]
        print(f"| {name.replace('_', '-')} | {100 * g['share']:.1f}% | {g['cross_entropy']:.3f} "
              f"| {g['target_entropy']:.3f} | {100 * g['top1']:.1f}% |")
    # The ids here are recomputed, not the trainer's: if they disagreed (a tie broken the other
    # way), the decoder would look far worse than its training loss says. Refuse that.
    logged = training_loss(pathlib.Path(args.checkpoint).parent / "metrics.jsonl")
    if logged is not None:
        report["pretrainer_cross_entropy"] = logged
        print(f"the pretrainer's cross-entropy over its last 100 steps (augmented crops): "
              f"{logged:.3f}")
        if report["all"]["cross_entropy"] > 1.5 * logged + 0.1:
            print(f"target_loss.py: {report['all']['cross_entropy']:.3f} nats here against "
                  f"{logged:.3f} in training: these ids are not the trainer's", file=sys.stderr)
            return 3
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
