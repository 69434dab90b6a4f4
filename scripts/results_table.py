#!/usr/bin/python3
"""Prints the tables of docs/results.md (Markdown) from the JSON files that
scripts/reproduce-results.sh leaves in a folder: <model>-<fraction>.json, where model is pixels,
random, splitmask, beit or mae, and <model>-<fraction>-seed<n>.json for fine-tuning with other seeds.
A missing run shows as a dash. With --svg DIR it also draws, for each
label fraction, the fine-tuning loss curves of the three encoders in one chart:
DIR/finetune-<fraction>.svg.

    results_table.py runs/results [--svg docs/results]"""
import json
import pathlib
import re
import sys

MODELS = [("pixels", "raw pixels"), ("random", "random init / from scratch"),
          ("splitmask", "SplitMask"), ("beit", "BEiT"), ("mae", "MAE")]


def load(folder):
    """{(model, fraction): run} for seed 0, and {(model, fraction, seed): run} for the others."""
    runs, seeds = {}, {}
    for path in folder.glob("*.json"):
        m = re.fullmatch(r"(pixels|random|splitmask|beit|mae)-([0-9.]+)(?:-seed(\d+))?", path.stem)
        if m and m.group(3):
            seeds[(m.group(1), float(m.group(2)), int(m.group(3)))] = json.loads(path.read_text())
        elif m:
            runs[(m.group(1), float(m.group(2)))] = json.loads(path.read_text())
    return runs, seeds


def percent(run, key):
    if run is None or key not in run:
        return "–"
    return f"{100 * run[key]['accuracy']:.1f}"


COLOURS = {"random": "#777777", "splitmask": "#d62728", "beit": "#1f77b4", "mae": "#2ca02c"}


def curves_svg(path, title, curves):
    """A line chart of {name: [(step, loss)]} as SVG, with axes and a legend."""
    w, h, left, right, top, bottom = 720, 400, 60, 150, 36, 44
    points = [p for c in curves.values() for p in c]
    x_max = max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    y_min, y_max = y_min - 0.05 * (y_max - y_min), y_max + 0.05 * (y_max - y_min)
    def x(v): return left + (w - left - right) * v / x_max
    def y(v): return top + (h - top - bottom) * (y_max - v) / (y_max - y_min)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">step</text>']
    for i in range(5):
        sv, lv = x_max * i / 4, y_min + (y_max - y_min) * i / 4
        out.append(f'<text x="{x(sv)}" y="{h - bottom + 16}" text-anchor="middle">{sv:.0f}</text>')
        out.append(f'<text x="{left - 6}" y="{y(lv) + 4}" text-anchor="end">{lv:.2f}</text>')
    for i, (name, c) in enumerate(curves.items()):
        colour = COLOURS.get(name, "black")
        line = " ".join(f"{x(s):.1f},{y(l):.1f}" for s, l in c)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        label = dict(MODELS)[name] if name != "random" else "from scratch"
        out.append(f'<text x="{w - right + 10}" y="{top + 16 * i + 10}" fill="{colour}">{label}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main():
    args = sys.argv[1:]
    svg_dir = None
    if "--svg" in args:
        i = args.index("--svg")
        svg_dir = pathlib.Path(args[i + 1])
        del args[i:i + 2]
    folder = pathlib.Path(args[0] if args else "runs/results")
    runs, seeds = load(folder)
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

    if seeds:
        f = min(g for (_, g, _) in seeds)
        names = sorted({s for (_, g, s) in seeds if g == f})
        print(f"\nFine-tuning with {100 * f:g}% of the labels by seed (each seed draws its own "
              "labels, head, order and crops)\n")
        print("| encoder | seed 0 | " + " | ".join(f"seed {s}" for s in names) +
              " | mean | s.d. |\n|" + "|".join(["---"] * (len(names) + 4)) + "|")
        for model, name in MODELS[1:]:
            values = [runs.get((model, f))] + [seeds.get((model, f, s)) for s in names]
            acc = [100 * r["finetune"]["accuracy"] for r in values if r and "finetune" in r]
            cells = [f"{100 * r['finetune']['accuracy']:.1f}" if r and "finetune" in r else "–"
                     for r in values]
            mean = sum(acc) / len(acc) if acc else float("nan")
            sd = (sum((a - mean) ** 2 for a in acc) / (len(acc) - 1)) ** 0.5 if len(acc) > 1 else float("nan")
            label = "from scratch" if model == "random" else name
            print(f"| {label} | " + " | ".join(cells) + f" | {mean:.1f} | {sd:.1f} |")

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
    for objective in ("splitmask", "beit", "mae"):
        log = folder / f"pretrain-{objective}.log"
        if log.exists():
            done = re.findall(r"done: (\d+) steps in (\S+);", log.read_text())
            if done:
                print(f"\nPre-training ({objective}): {done[-1][0]} steps in {done[-1][1]}", end="")
    print()
    if svg_dir:
        svg_dir.mkdir(parents=True, exist_ok=True)
        for f in fractions:
            curves = {m: [(p["step"], p["loss"]) for p in runs[(m, f)]["finetune"]["curve"]]
                      for m in ("random", "splitmask", "beit", "mae")
                      if (m, f) in runs and "finetune" in runs[(m, f)]}
            if curves:
                curves_svg(svg_dir / f"finetune-{f:g}.svg",
                           f"Fine-tuning loss (label smoothing 0.1), {100 * f:g}% of the labels",
                           curves)


if __name__ == "__main__":
    main()
