"""The PyTorch peer of bench_train_step: one SplitMask training step (tokens, split, forward and
backward of both branches, clipping, AdamW) with the model of tests/golden (the reference the
golden tests compare against), timed like Google Benchmark's repetitions: the median of
--repetitions runs of --steps steps each, after one warm-up step.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 benchmarks/pytorch_step.py --config ti4-28 --threads 2

Run it with Debian's python3-torch (/usr/bin/python3). OMP_WAIT_POLICY=PASSIVE must be set before
the interpreter starts (libgomp reads it when it is loaded); without it PyTorch is about twice as
slow on 2 cores. Prints one JSON line: the config, batch, threads, median seconds per step, and
the peak resident memory of this process.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))

CONFIGS = {  # as splitmask's presets::vit_ti4_28 and presets::vit_s4_32
    "ti4-28": {"image_size": 28, "channels": 1, "patch_size": 4, "width": 192, "depth": 12, "heads": 3,
               "vocabulary_size": 512, "batch": 64},
    "s4-32": {"image_size": 32, "channels": 3, "patch_size": 4, "width": 384, "depth": 12, "heads": 6,
              "vocabulary_size": 1024, "batch": 32},
}


def full_config(name, batch):
    c = dict(CONFIGS[name])
    grid = c["image_size"] // c["patch_size"]
    n = grid * grid
    c.update({"grid": grid, "patches": n, "patch_length": c["channels"] * c["patch_size"] ** 2,
              "mlp_ratio": 4, "decoder_width": c["width"], "decoder_depth": 2,
              "decoder_heads": c["heads"], "decoder_mlp_ratio": 4, "mask_ratio": 0.5,
              "subset_a": n // 2, "subset_b": n - n // 2, "layer_norm_eps": 1e-6,
              "batch": batch or c["batch"], "temperature": 0.2, "lambda": 1.0})
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="ti4-28")
    parser.add_argument("--batch", type=int, default=0, help="0: the config's (64 or 32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="steps per repetition")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from make_splitmask_fixture import SplitMask

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = full_config(args.config, args.batch)
    b, n, k = c["batch"], c["patches"], c["vocabulary_size"]
    p, g, ch = c["patch_size"], c["grid"], c["channels"]
    model = SplitMask(c)
    params = list(model.parameters())
    decay = [q for q in params if q.dim() >= 2]
    no_decay = [q for q in params if q.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=1.5e-3)
    images = torch.rand(b, ch, c["image_size"], c["image_size"])
    vocabulary = F.normalize(torch.randn(k, c["patch_length"]), dim=1)

    def step():
        with torch.no_grad():  # targets: nearest vocabulary patch by cosine similarity
            patches = images.reshape(b, ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, n, -1)
            ids = (((patches - 0.5) / 0.29) @ vocabulary.t()).argmax(dim=-1)
            order = torch.rand(b, n).argsort(dim=1)
            index_a = order[:, :c["subset_a"]].sort(dim=1).values
            index_b = order[:, c["subset_a"]:].sort(dim=1).values
        optimizer.zero_grad(set_to_none=True)
        out = model(images, index_a, index_b, ids, c["temperature"], c["lambda"])
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimizer.step()
        return out["loss"].item()

    step()  # warm-up: first-use allocations out of the timing
    times = []
    for _ in range(args.repetitions):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        times.append((time.perf_counter() - start) / args.steps)
    print(json.dumps({"framework": "pytorch " + torch.__version__, "config": args.config, "batch": b,
                      "threads": args.threads, "seconds_per_step": statistics.median(times),
                      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}))


if __name__ == "__main__":
    main()
