"""The table of a sweep over distillation methods on MNIST: test errors, the share of the
teacher-baseline gap closed, and the paired test of each point against its baseline.

A sweep reuses the seed's baseline at every point that trains the same student, so those runs
hold no baseline of their own and their summaries no paired test. This script exports each
run's students with `kd-tui export` (TorchScript), scores them on MNIST's 10,000 test images
with PyTorch, checks that every score is the one kd-tui reported, and pairs each distilled
student with the baseline of its seed and student model: exact McNemar per seed, and pooled
over the seeds' test examples (optimistic: the seeds share one test set).

    python3 scripts/method_table.py SWEEP_DIR --mnist ../shared/data/mnist [--kd-tui BIN]
"""

import argparse
import gzip
import json
import math
import pathlib
import struct
import subprocess

import torch


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).view(*shape)


def mcnemar_p(only_a, only_b):
    """Exact two-sided McNemar: the binomial test of the discordant pairs at 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def predictions(kd_tui, run_dir, model, images):
    out = run_dir / "export" / f"{model}.pt"
    if not out.exists():
        subprocess.run(
            [kd_tui, "export", str(run_dir), "--model", model, "--out", str(out)],
            check=True,
            capture_output=True,
        )
    module = torch.jit.load(str(out))
    with torch.no_grad():
        return torch.cat([module(x).argmax(1) for x in images.split(1000)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=pathlib.Path)
    ap.add_argument("--mnist", type=pathlib.Path, required=True)
    ap.add_argument("--kd-tui", default="target/release/kd-tui")
    ap.add_argument("--extra", type=pathlib.Path, nargs="*", default=[],
                    help="run folders outside the sweep (one per seed, the same settings, the "
                         "sweep's teacher), reported as one more row against the sweep's baselines")
    args = ap.parse_args()
    torch.set_num_threads(2)
    images = read_idx(args.mnist / "t10k-images-idx3-ubyte.gz").float().div(255).unsqueeze(1)
    labels = read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz").long()

    rows = json.load(open(args.sweep / "sweep.json"))["rows"]
    extra_point = 1 + max(r["point"] for r in rows)
    for run_dir in args.extra:
        preset = json.load(open(run_dir / "summary.json"))
        rows.append(dict(point=extra_point, seed=preset["seed"], run_dir=str(run_dir),
                         values={"(outside the sweep)": str(run_dir.parent)}))
    runs = []
    for row in rows:
        run_dir = pathlib.Path(row["run_dir"])
        summary = json.load(open(run_dir / "summary.json"))
        right = {}
        for model in ("baseline", "distilled"):
            if summary.get(model):
                pred = predictions(args.kd_tui, run_dir, model, images)
                right[model] = pred.eq(labels)
                reported = summary[model]["test_acc"]
                scored = right[model].float().mean().item()
                assert abs(scored - reported) < 1e-6, f"{run_dir} {model}: {scored} != {reported}"
        runs.append(dict(point=int(row["point"]), seed=int(row["seed"]),
                         settings=", ".join(f"{k} = {json.dumps(v)}" for k, v in row["values"].items()
                                            if k != "student.model"),
                         summary=summary, right=right))
    # Each seed's baselines, by student model.
    baselines = {(r["seed"], r["summary"]["baseline"]["model"]): r for r in runs if "baseline" in r["right"]}
    teacher_errors = {r["seed"]: round(10000 * (1 - r["summary"]["teacher"]["test_acc"])) for r in runs}

    print("| point | settings | student | seed: teacher / baseline / distilled errors, paired p |"
          " mean errors t / b / d | gap closed (means) | pooled discordant d / b, p |")
    print("|---|---|---|---|---|---|---|")
    for point in sorted({r["point"] for r in runs}):
        cells, t, b, d, only_d, only_b = [], [], [], [], 0, 0
        for r in (r for r in runs if r["point"] == point):
            model = r["summary"]["distilled"]["model"]
            base = baselines[(r["seed"], model)]
            dist_right, base_right = r["right"]["distilled"], base["right"]["baseline"]
            od = int((dist_right & ~base_right).sum())
            ob = int((base_right & ~dist_right).sum())
            errors = (teacher_errors[r["seed"]], int((~base_right).sum()), int((~dist_right).sum()))
            cells.append(f"{r['seed']}: {errors[0]} / {errors[1]} / {errors[2]}, p = {mcnemar_p(od, ob):.2g}")
            t.append(errors[0]); b.append(errors[1]); d.append(errors[2])
            only_d += od; only_b += ob
        mean = lambda xs: sum(xs) / len(xs)
        gap = (mean(b) - mean(d)) / (mean(b) - mean(t))
        print(f"| {point} | {runs[[r['point'] for r in runs].index(point)]['settings']} | {model} | "
              f"{'; '.join(cells)} | {mean(t):.1f} / {mean(b):.1f} / {mean(d):.1f} | {100 * gap:.0f}% | "
              f"{only_d} / {only_b}, p = {mcnemar_p(only_d, only_b):.2g} |")


if __name__ == "__main__":
    main()
