#!/usr/bin/python3
"""Prints the tables of docs/results.md (Markdown) from the JSON files that
scripts/reproduce-results.sh leaves in a folder: <model>-<fraction>.json, where model is pixels,
random, splitmask or beit. A missing run shows as a dash."""
import json
import pathlib
import re
import sys

MODELS = [("pixels", "raw pixels"), ("random", "random init / from scratch"),
          ("splitmask", "SplitMask"), ("beit", "BEiT")]


def load(folder):
    runs = {}
    for path in folder.glob("*.json"):
        m = re.fullmatch(r"(pixels|random|splitmask|beit)-([0-9.]+)", path.stem)
        if m:
            runs[(m.group(1), float(m.group(2)))] = json.loads(path.read_text())
    return runs


def percent(run, key):
    if run is None or key not in run:
        return "–"
    return f"{100 * run[key]['accuracy']:.1f}"


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/results")
    runs = load(folder)
    if not runs:
        sys.exit(f"results_table.py: no <model>-<fraction>.json in {folder}")
    fractions = sorted({f for (_, f) in runs})
    any_run = next(iter(runs.values()))
    labelled = {f: next(r["labelled_images"] for (m, g), r in runs.items() if g == f)
                for f in fractions}
    head = " | ".join(f"{100 * f:g}% ({labelled[f]})" for f in fractions)
    rule = "|".join(["---"] * (len(fractions) + 1))

    print(f"Data: {any_run['data']}, {any_run['train_images']} training and "
          f"{any_run['test_images']} test images; seed {any_run['seed']}. "
          "Accuracy on the test split, %.\n")
    print(f"Fine-tuning, by labels used (images)\n\n| encoder | {head} |\n|{rule}|")
    for model, name in MODELS[1:]:
        cells = [percent(runs.get((model, f)), "finetune") for f in fractions]
        label = "from scratch" if model == "random" else name
        print(f"| {label} | " + " | ".join(cells) + " |")
    for measure, title in [("knn", "k-NN (k 20, cosine)"), ("linear", "Linear probe")]:
        print(f"\n{title} on frozen features, by labels used (images)\n\n| features | {head} |\n|{rule}|")
        for model, name in MODELS:
            label = "random init" if model == "random" else name
            cells = [percent(runs.get((model, f)), measure) for f in fractions]
            print(f"| {label} | " + " | ".join(cells) + " |")

    print("\nRun times (s): whole evaluation, and fine-tuning alone\n")
    print(f"| run | {' | '.join(f'{100 * f:g}%' for f in fractions)} |\n|{rule}|")
    for model, name in MODELS:
        cells = []
        for f in fractions:
            r = runs.get((model, f))
            if r is None:
                cells.append("–")
            elif "finetune" in r:
                cells.append(f"{r['seconds']:.0f} ({r['finetune']['train_seconds']:.0f})")
            else:
                cells.append(f"{r['seconds']:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for objective in ("splitmask", "beit"):
        log = folder / f"pretrain-{objective}.log"
        if log.exists():
            done = re.findall(r"done: (\d+) steps in (\S+);", log.read_text())
            if done:
                print(f"\nPre-training ({objective}): {done[-1][0]} steps in {done[-1][1]}", end="")
    print()


if __name__ == "__main__":
    main()
