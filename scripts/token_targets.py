#!/usr/bin/python3
"""What a checkpoint's tokenizer makes of the training images' patches: the share of targets on
near-uniform patches (flat black background, flat grey), how few words those fall on, and how
spread the other targets are (issue 17's tokenizer experiment).

The ids are computed as splitmask's patch_tokenizer assigns them: the images normalised with the
run's data statistics, cut into P x P patches (channel, row, column within a patch), each patch
standardised with the tokenizer's statistics, then the vocabulary row (unit length) with the
largest dot product, the lowest id on ties. A patch is near-uniform when the standard deviation
of its raw pixels (0..1) is below a threshold.

    scripts/token_targets.py --checkpoint runs/x/checkpoint.safetensors [--images 10000]
        [--data /usr/share/datasets/fashion-mnist] [--json out.json]

Reads IDX files (MNIST layout, raw or .gz) only. Needs numpy."""
import argparse
import gzip
import json
import math
import pathlib
import struct

import numpy as np


def read_checkpoint(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        meta = header.pop("__metadata__")
        entry = header["tokenizer.vocabulary"]
        if entry["dtype"] != "F32":
            raise SystemExit(f"{path}: the vocabulary is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        f.seek(8 + size + begin)
        vocabulary = np.frombuffer(f.read(end - begin), dtype="<f4").reshape(entry["shape"])
    return meta, vocabulary


def read_idx_images(folder, limit, evenly):
    folder = pathlib.Path(folder)
    for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
        path = folder / name
        if path.exists():
            data = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            total, rows, cols = struct.unpack(">III", data[4:16])
            count = min(total, limit) if limit else total
            pixels = np.frombuffer(data, dtype=np.uint8, count=total * rows * cols, offset=16)
            pixels = pixels.reshape(total, 1, rows, cols)
            # evenly: images i·total/count, as the pre-trainer draws its vocabulary's images
            chosen = np.arange(count) * total // count if evenly else np.arange(count)
            return pixels[chosen].astype(np.float32) / 255.0
    raise SystemExit(f"{folder}: no train-images-idx3-ubyte(.gz)")


def patches_of(images, p):
    """(B, C, S, S) -> (B·N, C·P·P), channel-major within a patch, patches in row order."""
    b, c, s, _ = images.shape
    g = s // p
    x = images.reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(b * g * g, c * p * p)


def assign(raw, vocabulary, encoder, data_stats, tokenizer):
    """(standardised patches (B·N, L), their ids (B·N), their scores at those ids) of raw images
    (B, C, S, S) in 0..1, as patch_tokenizer assigns them: the images normalised with the run's
    data statistics, each patch standardised with the tokenizer's, then the vocabulary row with
    the largest fp32 product, the lowest id among equal rows. A random-patch vocabulary holds
    many copies of the black patch: each copy takes the product of the first, since a product's
    rounding can depend on a row's position (NumPy's does), which would pick another copy than
    the trainer did. (In fp64, near-ties of distinct k-means rows go the other way than the
    trainer's fp32 products; fp32 agrees with what the trained decoder predicts.)"""
    c, p = encoder["channels"], encoder["patch_size"]
    channel = np.repeat(np.arange(c), p * p)
    mean, std = np.array(data_stats["mean"])[channel], np.array(data_stats["std"])[channel]
    t_mean = np.array(tokenizer["mean"])[channel]
    t_std = np.array(tokenizer["std"])[channel]
    x = ((patches_of(raw, p) - mean) / std).astype(np.float32)
    x = ((x - t_mean) * (1.0 / t_std)).astype(np.float32)
    _, first, inverse = np.unique(vocabulary, axis=0, return_index=True, return_inverse=True)
    copies_of = first[inverse.ravel()]  # each row -> the lowest id of an equal row
    rows = np.ascontiguousarray(vocabulary.T)
    ids = np.empty(len(x), dtype=np.int64)
    best = np.empty(len(x))
    for begin in range(0, len(x), 1 << 15):  # a block of patches at a time
        block = slice(begin, min(begin + (1 << 15), len(x)))
        scores = (x[block] @ rows)[:, copies_of]
        ids[block] = np.argmax(scores, axis=1)  # the first of equal ones
        best[block] = scores[np.arange(len(scores)), ids[block]]
    return x, ids, best


def entropy_bits(ids, k):
    counts = np.bincount(ids, minlength=k).astype(np.float64)
    q = counts[counts > 0] / counts.sum()
    return float(-(q * np.log2(q)).sum())


def census(ids, raw_patches, k, thresholds):
    """How the ids (B·N) of raw patches (B·N, L) spread over the k words: words used, entropy,
    the 5 commonest words' share, and for each threshold the near-uniform patches' share, how
    many of them are all black, the words they fall on and the entropies."""
    spread = raw_patches.std(axis=1)
    black = raw_patches.max(axis=1) == 0  # every pixel 0: one word whatever the tokenizer keeps
    report = {"patches": int(len(ids)), "vocabulary": int(k),
              "words_used": int(len(np.unique(ids))),
              "entropy_bits": entropy_bits(ids, k), "max_entropy_bits": math.log2(k),
              "top5_share": float(np.sort(np.bincount(ids, minlength=k))[::-1][:5].sum()
                                  / len(ids)),
              "near_uniform": []}
    for t in thresholds:
        flat = spread < t
        flat_ids, other_ids = ids[flat], ids[~flat]
        counts = np.sort(np.bincount(flat_ids, minlength=k))[::-1]
        cover = int(np.searchsorted(np.cumsum(counts), 0.9 * flat.sum()) + 1) if flat.any() else 0
        report["near_uniform"].append({
            "threshold": t, "share": float(flat.mean()),
            "black_share": float((flat & black).sum() / max(flat.sum(), 1)),
            "words": int(len(np.unique(flat_ids))), "words_for_90_percent": cover,
            "entropy_bits": entropy_bits(flat_ids, k) if flat.any() else 0.0,
            "entropy_bits_others": entropy_bits(other_ids, k) if (~flat).any() else 0.0})
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--images", type=int, default=10000, help="the first N training images")
    parser.add_argument("--evenly", action="store_true",
                        help="N images evenly spaced over the set instead of the first N")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.01, 0.02, 0.05],
                        help="a patch is near-uniform when its pixels' s.d. is below this")
    parser.add_argument("--json")
    args = parser.parse_args()

    meta, vocabulary = read_checkpoint(args.checkpoint)
    encoder = json.loads(meta["encoder"])
    stats = json.loads(meta["run"])["data_stats"]
    tokenizer = json.loads(meta["tokenizer"])
    p, k = encoder["patch_size"], vocabulary.shape[0]
    images = read_idx_images(args.data, args.images, args.evenly)
    if images.shape[1] != encoder["channels"] or images.shape[2] != encoder["image_size"]:
        raise SystemExit(f"{args.data}: images of {images.shape[1:]} do not fit {encoder}")
    raw = patches_of(images, p)
    x, ids, best = assign(images, vocabulary, encoder, stats, tokenizer)
    norms = np.linalg.norm(x, axis=1)
    nonzero = norms > 0
    similarity = float((best[nonzero] / norms[nonzero]).mean())
    report = {"checkpoint": args.checkpoint, "images": int(images.shape[0]),
              "mean_cosine_similarity": similarity, **census(ids, raw, k, args.thresholds)}
    print(f"{report['patches']} patches of {report['images']} images, {k} words "
          f"({report['words_used']} used); entropy of the targets "
          f"{report['entropy_bits']:.2f} of {math.log2(k):.2f} bits; the 5 commonest words "
          f"take {100 * report['top5_share']:.1f}%; mean cosine similarity to the word "
          f"{similarity:.3f}")
    print("| pixel s.d. below | share of targets | of them, all black | words they fall on "
          "(90% of them on) | entropy, near-uniform | entropy, the others |")
    print("|---:|---:|---:|---|---:|---:|")
    for row in report["near_uniform"]:
        print(f"| {row['threshold']:g} | {100 * row['share']:.1f}% "
              f"| {100 * row['black_share']:.0f}% | {row['words']} ({row['words_for_90_percent']}) "
              f"| {row['entropy_bits']:.2f} | {row['entropy_bits_others']:.2f} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
