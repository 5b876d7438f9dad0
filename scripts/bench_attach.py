#!/usr/bin/env python3
"""Throughput of a detached job with 0, 1 and 2 cockpits attached, against a plain --batch run.

Each round runs the four variants one after the other (the order rotates every round), on the
same preset and seed; a "client" here is what `kd-tui attach` does on the wire: it says hello
and reads every line until the job hangs up. Reported: median training samples/s over all step
records of the run, and the ratio to --batch.

    python3 scripts/bench_attach.py [--rounds 5] [--bin target/release/kd-tui] [-- --set ...]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HELLO = b'{"hello":"kd-tui","version":1}\n'


def follow(path, counts, i):
    """A client: hello, then read until the job hangs up."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(HELLO)
    with s.makefile("rb") as f:
        for _ in f:
            counts[i] += 1


def samples_per_sec(run_dir):
    """Training samples over training seconds, from the run's step records."""
    rates = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "step":
                rates.append(r["samples_per_sec"])
    return statistics.median(rates)


def run_variant(binary, extra, variant, workdir):
    run_dir = os.path.join(workdir, variant)
    if not any(a.endswith(".toml") for a in extra):
        extra = ["presets/digits.toml", *extra]  # the measured preset, not kd-tui's minute-long default
    start = time.time()
    if variant == "batch":
        subprocess.run([binary, "--batch", "--out", run_dir, *extra], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return samples_per_sec(run_dir), time.time() - start, 0
    clients = {"detached-0": 0, "detached-1": 1, "detached-2": 2}[variant]
    subprocess.run([binary, "--detach", "--out", run_dir, *extra], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = os.path.join(run_dir, "control.sock")
    counts = [0] * clients
    threads = [threading.Thread(target=follow, args=(sock, counts, i)) for i in range(clients)]
    for t in threads:
        t.start()
    while os.path.exists(sock):
        time.sleep(0.05)
    for t in threads:
        t.join()
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert json.load(f)["status"] == "completed"
    return samples_per_sec(run_dir), time.time() - start, min(counts, default=0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bin", default="target/release/kd-tui")
    p.add_argument("extra", nargs="*", help="kd-tui arguments (after --)")
    a = p.parse_args()
    extra = a.extra or ["--set", "teacher.epochs=60", "--set", "student.epochs=60"]
    variants = ["batch", "detached-0", "detached-1", "detached-2"]
    rates = {v: [] for v in variants}
    walls = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = variants[r % 4:] + variants[:r % 4]
            for v in order:
                rate, wall, lines = run_variant(a.bin, extra, v, os.path.join(tmp, str(r)))
                rates[v].append(rate)
                walls[v].append(wall)
                print(f"round {r} {v:11} {rate:10.0f} samples/s  {wall:6.2f} s wall"
                      + (f"  (each client read {lines} lines)" if lines else ""),
                      file=sys.stderr)
    base = statistics.median(rates["batch"])
    print(f"{'variant':12} {'median samples/s':>17} {'min-max':>19} {'ratio to batch':>15} {'median wall s':>14}")
    for v in variants:
        m = statistics.median(rates[v])
        print(f"{v:12} {m:17.0f} {min(rates[v]):9.0f}-{max(rates[v]):<9.0f} {m / base:15.3f} "
              f"{statistics.median(walls[v]):14.2f}")


if __name__ == "__main__":
    main()
