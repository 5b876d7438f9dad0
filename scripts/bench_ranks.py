"""Data-parallel throughput on this machine: kd-tui with one process and with `--nproc 2`
(Gloo over loopback), runs alternated, medians over rounds. Per phase: training samples/s and,
for two ranks, the share of training time spent in the gradient all-reduce (rank 0's clock,
from summary.json). One process runs twice: with the preset's batch size, and with the doubled
batch (the same global batch as two ranks). Then the floor: plain PyTorch's own Gloo
all-reduce between two processes, timed for the gradient sizes of these models.

    python3 scripts/bench_ranks.py [--rounds 3] [--workloads digits,mnist] [--bin target/release/kd-tui]
"""

import argparse
import json
import os
import pathlib
import statistics
import socket
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PHASES = ("teacher", "baseline", "distilled")
WORKLOADS = {
    "digits": ("presets/digits.toml", [], (64, 64)),
    "mnist": ("presets/mnist.toml",
              ["data.path=../shared/data/mnist", "teacher.epochs=2", "student.epochs=2"], (128, 128)),
}


def run(binary, preset, sets, out, nproc):
    command = [binary, "--batch", preset, "--out", str(out)]
    if nproc > 1:
        command[1:1] = ["--nproc", str(nproc)]
    for s in sets:
        command += ["--set", s]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    started = next(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["type"] == "run_started")
    figures = {}
    for p in PHASES:
        r = summary[p]
        figures[p] = started["train_examples"] * r["epochs_run"] / r["train_seconds"]
        share = (summary.get("distributed") or {}).get("allreduce_seconds", {}).get(p)
        if share is not None:
            figures[p + " allreduce"] = share / r["train_seconds"]
    return figures


ALLREDUCE = r"""
import os, sys, time, torch, torch.distributed as dist
torch.set_num_threads(1)
rank = int(os.environ["RANK"])
dist.init_process_group("gloo", rank=rank, world_size=2,
                        init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}")
for n in map(int, sys.argv[1:]):
    t = torch.ones(n)
    for _ in range(20):
        dist.all_reduce(t)
    reps = 300 if n < 1_000_000 else 50
    start = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(t)
    if rank == 0:
        print(f"  PyTorch gloo all_reduce of {n:>9,} floats: "
              f"{1e6 * (time.perf_counter() - start) / reps:,.0f} us")
dist.destroy_process_group()
"""


def pytorch_allreduce(sizes):
    """Two plain PyTorch processes timing all_reduce (the floor for any Gloo data-parallel)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    ranks = [subprocess.Popen([sys.executable, "-c", ALLREDUCE, *map(str, sizes)],
                              env=dict(os.environ, RANK=str(r), MASTER_PORT=port))
             for r in (0, 1)]
    for r in ranks:
        r.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", default="digits,mnist")
    parser.add_argument("--bin", default=str(ROOT / "target/release/kd-tui"))
    args = parser.parse_args()
    for w in args.workloads.split(","):
        preset, sets, (teacher_batch, student_batch) = WORKLOADS[w]
        doubled = sets + [f"teacher.batch_size={2 * teacher_batch}",
                          f"student.batch_size={2 * student_batch}"]
        variants = {"1 process": (sets, 1), "1 process, doubled batch": (doubled, 1),
                    "2 ranks": (sets, 2)}
        got = {v: [] for v in variants}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                names = list(variants)
                names = names[r % len(names):] + names[:r % len(names)]
                for v in names:
                    vsets, nproc = variants[v]
                    out = pathlib.Path(tmp) / f"{w}-{r}-{v.replace(' ', '_').replace(',', '')}"
                    got[v].append(run(args.bin, preset, vsets, out, nproc))
        print(f"\n{w} ({args.rounds} rounds, medians; samples/s per phase)")
        for v, rounds in got.items():
            cells = []
            for p in PHASES:
                speed = statistics.median(f[p] for f in rounds)
                cell = f"{p} {speed:,.0f}"
                if p + " allreduce" in rounds[0]:
                    share = statistics.median(f[p + " allreduce"] for f in rounds)
                    cell += f" (all-reduce {100 * share:.0f}% of training time)"
                cells.append(cell)
            print(f"  {v:26} " + "; ".join(cells))
        base = got["1 process"]
        for p in PHASES:
            ratio = statistics.median(t[p] / b[p] for t, b in zip(got["2 ranks"], base))
            print(f"  2 ranks / 1 process, {p}: {ratio:.2f}x")
    # Gradient floats: digits 256-256 teacher and 32 student; MNIST 800-800 teacher and student.
    print("\nThe floor, plain PyTorch between two processes (1 thread each):")
    pytorch_allreduce([2_410, 85_002, 25_450, 1_276_810])


if __name__ == "__main__":
    sys.exit(main())
