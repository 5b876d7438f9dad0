"""Whole presets in kd-tui and in plain PyTorch (scripts/pytorch_preset.py), side by side.

Each round runs every workload once in each program, alternating which goes first, with a fresh
teacher-output cache for kd-tui (so both compute the teacher's logits). Per run it records the
whole-process wall time, peak memory (max RSS), each phase's training samples/s, launch to the
first optimizer step, and the test accuracies. Between rounds it measures a large matmul, the
machine's reference GFLOP/s. Prints medians over rounds with their spread (min-max), and ratios
as medians of the per-round ratios; --json writes every figure.

    python3 scripts/bench_presets.py [--rounds 5] [--workloads digits,mnist,...] [--json F]
    python3 scripts/bench_presets.py --smoke    # one tiny epoch per phase on digits, one round

Exits 1 if the two programs did not do the same work (examples x epochs per phase, test size).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
PHASES = ("teacher", "baseline", "distilled")
# name: (preset, --set overrides); {mnist} is the MNIST folder.
WORKLOADS = {
    "digits": ("presets/digits.toml", []),
    # The CNN teacher without its shift augmentation (plain PyTorch has no cheap equivalent).
    "digits-cnn": ("presets/digits-cnn.toml", ["teacher.augment.shift=0"]),
    "mnist": ("presets/mnist.toml", ["data.path={mnist}", "teacher.epochs=2", "student.epochs=2"]),
    "mnist-cnn": (
        "presets/mnist-cnn.toml",
        ["data.path={mnist}", "data.train_limit=12000", "teacher.epochs=1", "student.epochs=1"],
    ),
}
SMOKE = ["teacher.epochs=1", "student.epochs=1"]


def measured(command, env, timeout=None):
    """Runs `command` to completion under a small Python wrapper that times it and reports the
    child's own peak memory; returns (wall seconds, max RSS in MB, launch unix time). With a
    timeout (seconds) the command is stopped after it, as a failure (coreutils' timeout, 124)."""
    name = command[0]
    if timeout:
        command = ["timeout", "--kill-after=10", str(timeout), *command]
    probe = (
        "import sys,time,resource,subprocess;"
        "t=time.time();p=time.perf_counter();"
        "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE);"
        "w=time.perf_counter()-p;"
        "sys.stderr.buffer.write(r.stderr[-4000:]) if r.returncode else None;"
        "print(w,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,t);sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], env=env, capture_output=True)
    if out.returncode != 0:
        why = f"timed out after {timeout} s" if timeout and out.returncode == 124 else "failed"
        sys.exit(f"{name} {why} ({out.returncode}):\n{out.stderr.decode()[-2000:]}")
    wall, rss_kb, launched = out.stdout.split()
    return float(wall), int(rss_kb) / 1024, float(launched)


def kd_tui_run(binary, preset, sets, scratch, timeout=None):
    out = scratch / "kd-tui-run"
    env = dict(os.environ, KD_TUI_CACHE=str(scratch / "cache"))
    command = [binary, "--batch", preset, "--out", str(out)]
    for s in sets:
        command += ["--set", s]
    wall, rss, launched = measured(command, env, timeout)
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if r["type"] == "phase_started" and r["phase"] == "teacher")
    started = next(r for r in records if r["type"] == "run_started")
    phases = {}
    for p in PHASES:
        r = summary[p]
        phases[p] = dict(train_seconds=r["train_seconds"], epochs=r["epochs_run"],
                         train_examples=started["train_examples"], test_acc=r["test_acc"])
    return dict(wall=wall, rss_mb=rss, first_step=started["clock_origin_unix"] + first["wall_time"] - launched,
                phases=phases, test_examples=summary["comparison"]["paired"]["n"])


def pytorch_run(preset, sets, scratch, extra=(), script=ROOT / "scripts/pytorch_preset.py",
                timeout=None):
    """`extra`: more arguments for pytorch_preset.py (e.g. --device cuda)."""
    out = scratch / "pytorch-run"
    command = [sys.executable, str(script), preset, "--out", str(out), *extra]
    for s in sets:
        command += ["--set", s]
    wall, rss, launched = measured(command, dict(os.environ), timeout)
    result = json.loads((out / "result.json").read_text())
    phases = {p: result["phases"][p] for p in PHASES}
    return dict(wall=wall, rss_mb=rss, first_step=result["first_step_at"] - launched,
                phases=phases, test_examples=result["test_examples"])


def matmul_gflops(n=2048, reps=5):
    """GFLOP/s of an n x n float32 matmul at PyTorch's default threads (median of reps)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def teacher_flops_per_sample(preset, sets):
    """Training FLOPs per example of an MLP teacher: 3 x (2 x multiply-adds of the forward)."""
    p = tomllib.loads((ROOT / preset).read_text())
    model = p["teacher"]["model"]
    if model["kind"] != "mlp":
        return None
    inputs = {"digits": 64, "mnist": 784}[p["data"]["source"]]
    sizes = [inputs, *model["hidden"], 10]
    return 3 * 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))


def same_work(kd, py):
    """Why the two runs did different work, or None."""
    if kd["test_examples"] != py["test_examples"]:
        return f"test examples {kd['test_examples']} vs {py['test_examples']}"
    for p in PHASES:
        a, b = kd["phases"][p], py["phases"][p]
        if (a["epochs"], a["train_examples"]) != (b["epochs"], b["train_examples"]):
            return f"{p}: {a['epochs']} x {a['train_examples']} vs {b['epochs']} x {b['train_examples']}"
    return None


def samples_per_sec(run, phase):
    p = run["phases"][phase]
    return p["epochs"] * p["train_examples"] / p["train_seconds"]


def spread(values):
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def fmt(s, digits=2):
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", default="digits,digits-cnn,mnist,mnist-cnn")
    parser.add_argument("--kd-tui", default=str(ROOT / "target/release/kd-tui"))
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared/data/mnist"))
    parser.add_argument("--smoke", action="store_true", help="digits, one epoch per phase, one round")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    names = ["digits"] if args.smoke else args.workloads.split(",")
    rounds = 1 if args.smoke else args.rounds
    if any(n.startswith("mnist") for n in names) and not pathlib.Path(args.mnist).is_dir():
        print(f"no MNIST at {args.mnist}: skipping the MNIST workloads", file=sys.stderr)
        names = [n for n in names if not n.startswith("mnist")]
    runs = {n: {"kd-tui": [], "pytorch": []} for n in names}
    matmul = []
    for r in range(rounds):
        matmul.append(matmul_gflops())
        for name in names:
            preset, sets = WORKLOADS[name]
            sets = [s.format(mnist=args.mnist) for s in sets] + (SMOKE if args.smoke else [])
            order = ["kd-tui", "pytorch"] if r % 2 == 0 else ["pytorch", "kd-tui"]
            for program in order:
                with tempfile.TemporaryDirectory() as scratch:
                    scratch = pathlib.Path(scratch)
                    if program == "kd-tui":
                        result = kd_tui_run(args.kd_tui, preset, sets, scratch)
                    else:
                        result = pytorch_run(preset, sets, scratch)
                runs[name][program].append(result)
                print(f"round {r + 1}/{rounds} {name} {program}: {result['wall']:.2f} s",
                      file=sys.stderr)
            why = same_work(runs[name]["kd-tui"][-1], runs[name]["pytorch"][-1])
            if why:
                sys.exit(f"{name}: kd-tui and PyTorch did different work: {why}")
    report = {"matmul_gflops": spread(matmul), "workloads": {}}
    print(f"large matmul (2048^2, default threads): {fmt(spread(matmul), 1)} GFLOP/s\n")
    print("| workload | measure | kd-tui | PyTorch | PyTorch / kd-tui (time) or kd-tui / PyTorch |")
    print("|---|---|---|---|---|")
    for name in names:
        kd, py = runs[name]["kd-tui"], runs[name]["pytorch"]
        rows = {"wall s": (lambda x: x["wall"], True),
                "launch to first step s": (lambda x: x["first_step"], True),
                "peak memory MB": (lambda x: x["rss_mb"], True)}
        for p in PHASES:
            rows[f"{p} samples/s"] = (lambda x, p=p: samples_per_sec(x, p), False)
        for p in PHASES:
            rows[f"{p} test acc %"] = (lambda x, p=p: 100 * x["phases"][p]["test_acc"], None)
        w = report["workloads"][name] = {"runs": runs[name]}
        for label, (of, lower_is_better) in rows.items():
            a, b = [of(x) for x in kd], [of(x) for x in py]
            ratio = "" if lower_is_better is None else fmt(spread(
                [(y / x if lower_is_better else x / y) for x, y in zip(a, b)]))
            w[label] = dict(kd_tui=spread(a), pytorch=spread(b), ratio=ratio)
            print(f"| {name} | {label} | {fmt(spread(a))} | {fmt(spread(b))} | {ratio} |")
        flops = teacher_flops_per_sample(*WORKLOADS[name])
        if flops:
            achieved = [samples_per_sec(x, "teacher") * flops / 1e9 for x in kd]
            share = [a / m for a, m in zip(achieved, matmul)]
            w["teacher GFLOP/s"] = dict(kd_tui=spread(achieved), of_matmul=spread(share))
            print(f"| {name} | teacher GFLOP/s (share of matmul) | {fmt(spread(achieved), 1)} "
                  f"({fmt(spread(share))}) | | |")
        d = [x["phases"]["distilled"]["train_seconds"] / x["phases"]["baseline"]["train_seconds"]
             for x in kd]
        w["distilled / baseline phase time"] = spread(d)
        print(f"| {name} | distilled / baseline phase time | {fmt(spread(d))} | | |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
