"""The PyTorch peer of bench_train_step (CPU) and bench_cuda_step (GPU): one SplitMask training
step (tokens, split, forward and backward of both branches, clipping, AdamW) with the model of
tests/golden (the reference the golden tests compare against), timed like Google Benchmark's
repetitions: the median of --repetitions runs of --steps steps each, after --warmup steps.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 benchmarks/pytorch_step.py --config ti4-28 --threads 2

Run it with Debian's python3-torch (/usr/bin/python3). OMP_WAIT_POLICY=PASSIVE must be set before
the interpreter starts (libgomp reads it when it is loaded); without it PyTorch is about twice as
slow on 2 cores. Prints one JSON line: the config, batch, threads, median seconds per step, and
the peak resident memory of this process.

On a GPU (PyTorch 2 with CUDA), e.g. the paper's ViT-B/16 at 224 px:

    python3 benchmarks/pytorch_step.py --config b16-224 --device cuda --amp bf16 --compile

--device cuda runs the step on the first GPU and times it with torch.cuda.synchronize() around
each repetition (every step also reads its loss back, as our step returns host losses). --amp
bf16 runs the forward (and so the backward) under torch.autocast in bfloat16, with fp32 weights
and AdamW, as mixed precision is usually run; --compile passes the model to torch.compile (the
compilation happens in the warm-up steps, out of the timing). fp32 is strict fp32 unless --tf32
(PyTorch's default would let cuDNN run the patch embedding's convolution in TF32). The images
stay on the device unless --host-images, which copies them from host memory in every step, as
our step does. Any of these adds to the JSON line: the device and its name, amp, compile, tf32,
the peak CUDA memory allocated and each repetition's seconds.
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

# As splitmask's presets::vit_ti4_28, presets::vit_s4_32 and presets::vit_b16_224; full_config adds
# what the presets share: decoder of the encoder's width and heads, depth 2, MLP ratio 4, mask
# ratio 1/2, LayerNorm epsilon 1e-6.
CONFIGS = {
    "ti4-28": {"image_size": 28, "channels": 1, "patch_size": 4, "width": 192, "depth": 12, "heads": 3,
               "vocabulary_size": 512, "batch": 64},
    "s4-32": {"image_size": 32, "channels": 3, "patch_size": 4, "width": 384, "depth": 12, "heads": 6,
              "vocabulary_size": 1024, "batch": 32},
    "b16-224": {"image_size": 224, "channels": 3, "patch_size": 16, "width": 768, "depth": 12, "heads": 12,
                "vocabulary_size": 8192, "batch": 64},
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


def step_flops(c):
    """Matrix FLOPs (2·M·N·K per product) of one step, as splitmask_trainer::step_flops counts
    them: the forward of both branches (encoder on its subset, decoder on all N positions, the
    head on the other subset), their backward as twice that, the patch embedding forward and
    weight gradient, and the tokenizer's product."""
    b, n, d, dd = c["batch"], c["patches"], c["width"], c["decoder_width"]
    length, k = c["patch_length"], c["vocabulary_size"]

    def block(rows_n, width, mlp):
        rows = b * rows_n
        return (2 * rows * width * 3 * width + 2 * 2 * b * rows_n * rows_n * width
                + 2 * rows * width * width + 2 * 2 * rows * width * mlp)

    def encoder(n_in):
        return c["depth"] * block(n_in, d, c["mlp_ratio"] * d)

    def decoder(n_in, n_out):
        return (2 * b * n_in * d * dd + c["decoder_depth"] * block(n, dd, c["decoder_mlp_ratio"] * dd)
                + 2 * b * n_out * dd * k)

    na, nb = c["subset_a"], c["subset_b"]
    body = encoder(na) + encoder(nb) + decoder(na, nb) + decoder(nb, na)
    return 3 * body + 2 * (2 * b * n * length * d) + 2 * b * n * length * k



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="ti4-28")
    parser.add_argument("--batch", type=int, default=0, help="0: the config's (64 or 32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="steps per repetition")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (at least 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none",
                        help="bf16: the forward under torch.autocast(bfloat16)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2)")
    parser.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 in fp32 matmuls and convolutions")
    parser.add_argument("--host-images", action="store_true",
                        help="copy the images from host memory in every step (as our step does)")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (first-use allocations, compilation)")

    import torch
    import torch.nn.functional as F
    from make_splitmask_fixture import SplitMask

    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        sys.exit(f"pytorch_step.py: --device {args.device}, but this PyTorch ({torch.__version__}) "
                 "sees no CUDA device")
    if args.compile and not hasattr(torch, "compile"):
        sys.exit(f"pytorch_step.py: --compile needs torch.compile (PyTorch 2); this is PyTorch {torch.__version__}")
    if on_cuda:
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    # The CPU defaults print the same JSON line as before the GPU options existed.
    default_run = device.type == "cpu" and args.amp == "none" and not (args.compile or args.tf32
                                                                       or args.host_images)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = full_config(args.config, args.batch)
    b, n, k = c["batch"], c["patches"], c["vocabulary_size"]
    p, g, ch = c["patch_size"], c["grid"], c["channels"]
    model = SplitMask(c).to(device)
    params = list(model.parameters())
    decay = [q for q in params if q.dim() >= 2]
    no_decay = [q for q in params if q.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=1.5e-3)
    images = torch.rand(b, ch, c["image_size"], c["image_size"])
    vocabulary = F.normalize(torch.randn(k, c["patch_length"]), dim=1).to(device)
    if not args.host_images:
        images = images.to(device)
    forward = torch.compile(model) if args.compile else model

    def step():
        x = images.to(device)  # a no-op unless --host-images
        with torch.no_grad():  # targets: nearest vocabulary patch by cosine similarity
            patches = x.reshape(b, ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, n, -1)
            ids = (((patches - 0.5) / 0.29) @ vocabulary.t()).argmax(dim=-1)
            order = torch.rand(b, n, device=device).argsort(dim=1)
            index_a = order[:, :c["subset_a"]].sort(dim=1).values
            index_b = order[:, c["subset_a"]:].sort(dim=1).values
        optimizer.zero_grad(set_to_none=True)
        if args.amp == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                out = forward(x, index_a, index_b, ids, c["temperature"], c["lambda"])
        else:
            out = forward(x, index_a, index_b, ids, c["temperature"], c["lambda"])
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimizer.step()
        return out["loss"].item()

    def synchronize():
        if on_cuda:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):  # first-use allocations (and compilation) out of the timing
        loss = step()
    synchronize()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.repetitions):
        synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        synchronize()
        times.append((time.perf_counter() - start) / args.steps)
    result = {"framework": "pytorch " + torch.__version__, "config": args.config, "batch": b,
              "threads": args.threads, "seconds_per_step": statistics.median(times),
              "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if not default_run:
        result.update({"device": str(device),
                       "device_name": torch.cuda.get_device_name(device) if on_cuda else "cpu",
                       "amp": args.amp, "compile": args.compile, "tf32": args.tf32,
                       "host_images": args.host_images, "warmup": args.warmup, "steps": args.steps,
                       "seconds_per_repetition": times, "loss": loss,
                       "matrix_gflop_per_step": step_flops(c) * 1e-9,
                       "tflops_per_s": step_flops(c) * 1e-12 / statistics.median(times)})
        if on_cuda:
            result["max_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    result["blas"] = blas_in_use()
    print(json.dumps(result))


def blas_in_use():
    """The BLAS this process loaded, and for OpenBLAS the kernels it runs ("OpenBLAS Haswell")."""
    import ctypes
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "libopenblas" in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return "OpenBLAS " + lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "unknown"


if __name__ == "__main__":
    main()
