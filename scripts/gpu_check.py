"""kd-tui on a GPU box: doctor, then presets on cuda and cpu, next to plain PyTorch (issue 12).

Run by `scripts/gpu-check.sh run` from the repo root, with the Python whose torch the binary is to
use. Puts that torch's lib folder and its site-packages' nvidia/*/lib folders on LD_LIBRARY_PATH
(the staged binary's rpath names the build machine), then:
  1. what PyTorch itself sees (version, CUDA, devices), `ldd` of the binary, `kd-tui doctor`;
  2. per device (cuda, then cpu) and workload (digits, mnist at 2 epochs per phase, as
     scripts/bench_presets.py runs them): `kd-tui --batch PRESET --set device=DEVICE` and
     `scripts/pytorch_preset.py PRESET --device DEVICE`, each in its own folder under --work;
  3. on cuda, digits again with precision = "bf16", and with the NCCL backend as a world of
     one rank (RANK=0, WORLD_SIZE=1); each cuda run's per-phase GPU use from summary.json
     (NVML), and the cockpit on a pseudo-terminal for 15 s, whose header must show the GPU;
  4. per device, the user's own image folder and TorchScript teacher and student
     (scripts/gpu_own_model.py, issue 22): kd-tui's test accuracies must be PyTorch's;
  5. a table of per-phase training samples/s and test accuracies, kd-tui / PyTorch and
     cuda / cpu ratios, and the accuracy differences between cuda and cpu.
Every step runs even when an earlier one failed; exits 1 if any failed.

    python3 scripts/gpu_check.py [--bin gpu-stage/kd-tui] [--mnist gpu-stage/mnist]
        [--presets gpu-stage/presets] [--devices cuda,cpu | --cpu-only]
        [--workloads digits,mnist,own] [--set KEY=VALUE ...] [--no-pytorch] [--timeout S]
        [--budget S] [--work DIR] [--json F]
"""

import argparse
import json
import os
import pathlib
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time

import torch

sys.dont_write_bytecode = True  # no scripts/__pycache__ from the imports below
import bench_presets  # noqa: E402
import gpu_own_model  # noqa: E402
from bench_presets import (  # noqa: E402
    PHASES, WORKLOADS, kd_tui_run, pytorch_run, same_work, samples_per_sec)

ROOT = bench_presets.ROOT
STARTED = time.perf_counter()
PYTORCH_INFO = r"""
import torch
print(f"PyTorch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}, "
      f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'}, "
      f"{torch.get_num_threads()} threads")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
"""


def say(message):
    print(f"gpu-check [{time.perf_counter() - STARTED:6.1f} s] {message}", flush=True)


def library_path():
    """torch/lib and every nvidia/**/lib folder of the site-packages that hold torch."""
    torch_dir = pathlib.Path(torch.__file__).resolve().parent
    sites = [torch_dir.parent, *map(pathlib.Path, site.getsitepackages())]
    if site.ENABLE_USER_SITE:
        sites.append(pathlib.Path(site.getusersitepackages()))
    dirs = [torch_dir / "lib"]
    for s in dict.fromkeys(sites):
        dirs += sorted(d for d in (s / "nvidia").glob("**/lib") if d.is_dir())
    return [str(d) for d in dict.fromkeys(dirs)]


class Steps:
    """Runs steps, keeping going after a failure; remembers which failed. Each step gets at most
    `per_step` seconds and what is left of `budget` (counted from the start); once under 10 s
    are left, the remaining steps are skipped (as failures)."""

    def __init__(self, per_step, budget):
        self.failed, self.per_step, self.budget = [], per_step, budget

    def run(self, name, f):
        """Runs f(timeout in s) and returns its result, or None if it failed."""
        left = self.budget - (time.perf_counter() - STARTED)
        if left < 10:
            self.failed.append(name)
            say(f"{name}: SKIPPED, the time budget (--budget {self.budget:.0f} s) is spent")
            return None
        say(f"{name} ...")
        t = time.perf_counter()
        try:
            result = f(round(min(self.per_step, left)))
        except SystemExit as e:  # bench_presets' measured() exits with the child's stderr
            result, why = None, str(e.code)
        except Exception as e:  # noqa: BLE001: report it and go on with the next step
            result, why = None, f"{type(e).__name__}: {e}"
        else:
            say(f"{name}: ok, {time.perf_counter() - t:.1f} s")
            return result
        self.failed.append(name)
        say(f"{name}: FAILED after {time.perf_counter() - t:.1f} s:\n"
            + "\n".join("    " + line for line in why.strip().splitlines()[-25:]))
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shell(command, timeout):
    """Runs `command`, echoing its output; raises if it fails."""
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    text = (out.stdout + out.stderr).rstrip()
    if out.returncode != 0:
        raise RuntimeError(f"exit status {out.returncode}\n{text}")
    print("\n".join("    " + line for line in text.splitlines()), flush=True)


def ldd_torch(binary, timeout):
    """The binary's libtorch libraries as the loader finds them with LD_LIBRARY_PATH. kd-tui need
    not link libtorch_cuda.so: it loads it from beside libtorch_cpu.so (`kd-tui doctor` says)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=timeout)
    lines = [line.strip() for line in out.stdout.splitlines() if line.split()
             and (any(k in line.split()[0] for k in ("torch", "c10", "cuda", "cupti", "gomp"))
                  or "not found" in line)]
    print("\n".join("    " + line for line in lines), flush=True)
    if out.returncode != 0 or any("not found" in line for line in lines):
        raise RuntimeError("libraries not found (LD_LIBRARY_PATH above)")


def kd_tui_result(binary, preset, sets, scratch, timeout):
    result = kd_tui_run(binary, preset, sets, scratch, timeout)
    summary = json.loads((scratch / "kd-tui-run/summary.json").read_text())
    result["device"] = summary.get("device", "?")
    # Each phase's GPU use as NVML saw it (absent on the CPU or without NVML).
    result["gpu"] = {p: (summary.get(p) or {}).get("gpu") for p in PHASES}
    if result["device"].startswith("cuda"):
        said = "; ".join(f"{p} {gpu_use_text(g)}" for p, g in result["gpu"].items())
        say(f"  GPU use (summary.json, NVML): {said}")
        if not any(result["gpu"].values()):
            raise RuntimeError("a cuda run without NVML readings in summary.json")
    return result


def gpu_use_text(g):
    if not g:
        return "none"
    return (f"{g['mean_util_percent']:.0f}% mean, {g['peak_memory_bytes'] / 2**30:.2f} GiB peak, "
            f"{g['readings']} readings")


def cockpit(binary, preset, sets, scratch, seconds=15, cols=120, rows=32,
            pattern=r"cuda:\d+ \d+% [0-9.]+/[0-9.]+ GiB"):
    """The cockpit on a pseudo-terminal for `seconds`, then SIGTERM. Its output goes through a
    terminal emulator (pyte, staged beside the script); prints the last screen that showed a GPU
    reading (`cuda:N P% U/T GiB` in the header) and fails if none did."""
    import fcntl, re, signal, struct, termios
    sys.path[:0] = [str(w) for w in sorted((ROOT / "gpu-stage/py").glob("*.whl"))]
    import pyte
    command = [binary, preset, "--out", str(scratch / "cockpit-run")]
    for s in sets:
        command += ["--set", s]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                             env=dict(os.environ, TERM="xterm-256color"),
                             preexec_fn=controlling_terminal)
    os.close(slave)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    reading = re.compile(pattern)
    shown, end = None, time.monotonic() + seconds
    import select
    while time.monotonic() < end and child.poll() is None:
        if select.select([master], [], [], 0.2)[0]:
            try:
                stream.feed(os.read(master, 65536))
            except OSError:
                break
            if reading.search(screen.display[0]):
                shown = list(screen.display)
    child.send_signal(signal.SIGTERM)
    try:
        while select.select([master], [], [], 2)[0]:
            stream.feed(os.read(master, 65536))
    except OSError:
        pass
    status = child.wait(timeout=60)
    os.close(master)
    print("\n".join("    " + line.rstrip() for line in (shown or screen.display)), flush=True)
    print(f"    exit status {status}", flush=True)
    if not shown:
        raise RuntimeError("the cockpit's header showed no GPU reading")


def pytorch_result(script, preset, sets, scratch, device, timeout):
    result = pytorch_run(preset, sets, scratch, ["--device", device], script, timeout)
    out = json.loads((scratch / "pytorch-run/result.json").read_text())
    result["device"] = out.get("device_name", device)
    return result


def table(results, workloads, devices):
    programs = ("kd-tui", "pytorch")
    print("\n| workload | device | program | ran on | wall s | "
          + " | ".join(f"{p} samples/s" for p in PHASES) + " | "
          + " | ".join(f"{p} test acc %" for p in PHASES) + " |")
    print("|---" * (5 + 2 * len(PHASES)) + "|")
    for w in workloads:
        for d in devices:
            for prog in programs:
                r = results.get((w, d, prog))
                if r is None:
                    print(f"| {w} | {d} | {prog} | FAILED |" + " |" * (1 + 2 * len(PHASES)))
                    continue
                speeds = " | ".join(f"{samples_per_sec(r, p):,.0f}" for p in PHASES)
                accs = " | ".join(f"{100 * r['phases'][p]['test_acc']:.2f}" for p in PHASES)
                print(f"| {w} | {d} | {prog} | {r['device']} | {r['wall']:.1f} | {speeds} | {accs} |")
    lines = []
    for w in workloads:
        for d in devices:
            kd, py = results.get((w, d, "kd-tui")), results.get((w, d, "pytorch"))
            if kd and py:
                ratios = ", ".join(f"{p} {samples_per_sec(kd, p) / samples_per_sec(py, p):.2f}x"
                                   for p in PHASES)
                lines.append(f"{w} {d}: kd-tui / PyTorch samples/s: {ratios}")
        if "cuda" in devices and "cpu" in devices:
            for prog in programs:
                g, c = results.get((w, "cuda", prog)), results.get((w, "cpu", prog))
                if g and c:
                    ratios = ", ".join(f"{p} {samples_per_sec(g, p) / samples_per_sec(c, p):.2f}x"
                                       for p in PHASES)
                    diffs = ", ".join(
                        f"{p} {100 * (g['phases'][p]['test_acc'] - c['phases'][p]['test_acc']):+.2f}"
                        for p in PHASES)
                    lines.append(f"{w} {prog}: cuda / cpu samples/s: {ratios}; "
                                 f"test acc cuda - cpu (pp): {diffs}")
    if lines:
        print("\n" + "\n".join(lines))


def main():
    stage = ROOT / "gpu-stage"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=str(stage / "kd-tui"), help="kd-tui binary")
    parser.add_argument("--mnist", default=str(stage / "mnist"), help="MNIST IDX folder")
    parser.add_argument("--presets", default=str(stage / "presets" if (stage / "presets").is_dir()
                                                 else ROOT / "presets"), help="preset folder")
    parser.add_argument("--pytorch-script", default=str(
        stage / "pytorch_preset.py" if (stage / "pytorch_preset.py").exists()
        else ROOT / "scripts/pytorch_preset.py"))
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--cpu-only", action="store_true", help="same as --devices cpu")
    parser.add_argument("--workloads", default="digits,mnist,own",
                        help=f"of {', '.join(WORKLOADS)} (scripts/bench_presets.py's) and own "
                             "(scripts/gpu_own_model.py)")
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="KEY=VALUE for every run, kd-tui and PyTorch alike (repeatable)")
    parser.add_argument("--no-pytorch", action="store_true", help="skip the plain PyTorch runs")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per step (default 180)")
    parser.add_argument("--budget", type=float, default=450,
                        help="seconds for everything (default 450): steps left after it are skipped")
    parser.add_argument("--work", type=pathlib.Path, help="run folders (default: a temp dir, kept)")
    parser.add_argument("--json", type=pathlib.Path, help="write every figure here")
    args = parser.parse_args()
    devices = ["cpu"] if args.cpu_only else args.devices.split(",")
    own = "own" in args.workloads.split(",")
    workloads = [w for w in args.workloads.split(",") if w != "own"]
    binary = str(pathlib.Path(args.bin).resolve())
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        sys.exit(f"gpu-check: unknown workloads {unknown} (of {', '.join(WORKLOADS)}, own)")
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="kd-tui-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)

    ld = library_path()
    os.environ["LD_LIBRARY_PATH"] = ":".join(ld + [p for p in os.environ.get(
        "LD_LIBRARY_PATH", "").split(":") if p and p not in ld])
    say(f"python {sys.executable}, torch {torch.__version__} at {pathlib.Path(torch.__file__).parent}")
    say(f"LD_LIBRARY_PATH={os.environ['LD_LIBRARY_PATH']}")
    say(f"binary {binary}; presets {args.presets}; MNIST {args.mnist}; run folders in {work}")
    if not os.access(binary, os.X_OK):
        print(f"gpu-check: no kd-tui binary at {binary} (--bin; `scripts/gpu-check.sh stage` "
              "stages one)", file=sys.stderr)
        return 1
    steps = Steps(args.timeout, args.budget)
    if shutil.which("nvidia-smi"):
        steps.run("nvidia-smi -L", lambda t: shell(["nvidia-smi", "-L"], min(t, 60)))
    steps.run("PyTorch's view", lambda t: shell([sys.executable, "-c", PYTORCH_INFO], min(t, 120)))
    steps.run("ldd kd-tui", lambda t: ldd_torch(binary, min(t, 30)))
    steps.run("kd-tui doctor", lambda t: shell([binary, "doctor"], min(t, 120)))

    results = {}
    for device in devices:
        for w in workloads:
            preset, sets = WORKLOADS[w]
            preset = str(pathlib.Path(args.presets) / pathlib.Path(preset).name)
            sets = [s.format(mnist=args.mnist) for s in sets] + args.sets
            if w.startswith("mnist") and not pathlib.Path(args.mnist).is_dir():
                steps.failed.append(f"{w} (no MNIST)")
                say(f"{w}: FAILED: no MNIST folder at {args.mnist} (--mnist DIR)")
                continue
            scratch = work / f"{w}-{device}"
            (scratch / "kd").mkdir(parents=True, exist_ok=True)
            results[w, device, "kd-tui"] = steps.run(
                f"{w} {device} kd-tui",
                lambda t: kd_tui_result(binary, preset, sets + [f"device={device}"],
                                        scratch / "kd", t))
            if args.no_pytorch:
                continue
            (scratch / "pytorch").mkdir(parents=True, exist_ok=True)
            results[w, device, "pytorch"] = steps.run(
                f"{w} {device} PyTorch",
                lambda t: pytorch_result(args.pytorch_script, preset, sets, scratch / "pytorch",
                                         device, t))
            kd, py = results[w, device, "kd-tui"], results[w, device, "pytorch"]
            why = kd and py and same_work(kd, py)
            if why:
                steps.failed.append(f"{w} {device}: different work")
                say(f"{w} {device}: kd-tui and PyTorch did different work: {why}")

    if "cuda" in devices and "digits" in workloads:
        # Mixed precision, and the NCCL backend as a world of one rank (a lent box has one GPU).
        preset, sets = WORKLOADS["digits"]
        preset = str(pathlib.Path(args.presets) / pathlib.Path(preset).name)
        sets = sets + args.sets + ["device=cuda"]
        variants = {
            "bf16": (sets + ['precision="bf16"'], {}),
            "nccl, world of 1": (sets + ['distributed.backend="nccl"'], dict(
                RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))),
        }
        for name, (variant_sets, env) in variants.items():
            scratch = work / f"digits-cuda-{name.split(',')[0]}"
            (scratch / "kd").mkdir(parents=True, exist_ok=True)
            os.environ.update(env)
            try:
                r = steps.run(f"digits cuda kd-tui {name}", lambda t: kd_tui_result(
                    binary, preset, variant_sets, scratch / "kd", t))
            finally:
                for key in env:
                    os.environ.pop(key, None)
            results["digits", "cuda", f"kd-tui {name}"] = r
            if r:
                speeds = ", ".join(f"{p} {samples_per_sec(r, p):,.0f}" for p in PHASES)
                accs = ", ".join(f"{p} {100 * r['phases'][p]['test_acc']:.2f}%" for p in PHASES)
                say(f"digits cuda kd-tui {name} ({r['device']}): samples/s {speeds}; test acc {accs}")

    if "cuda" in devices and "mnist" in workloads and pathlib.Path(args.mnist).is_dir():
        # The cockpit itself, on a pseudo-terminal: its header must show the GPU's use (NVML).
        preset, sets = WORKLOADS["mnist"]
        preset = str(pathlib.Path(args.presets) / pathlib.Path(preset).name)
        sets = [s.format(mnist=args.mnist) for s in sets] + args.sets + ["device=cuda"]
        (work / "cockpit").mkdir(parents=True, exist_ok=True)
        steps.run("mnist cuda cockpit (GPU use in the header)",
                  lambda t: cockpit(binary, preset, sets, work / "cockpit", min(15, t / 3)))

    for device in devices if own else []:
        if not pathlib.Path(args.mnist).is_dir():
            steps.failed.append(f"own {device} (no MNIST)")
            say(f"own {device}: FAILED: no MNIST folder at {args.mnist} (--mnist DIR)")
            continue
        (work / f"own-{device}").mkdir(parents=True, exist_ok=True)
        results["own", device, "kd-tui"] = steps.run(
            f"own folder and TorchScript models, {device} (issue 22)",
            lambda t: gpu_own_model.check(binary, args.presets, args.mnist, device,
                                          work / f"own-{device}", t))

    table(results, workloads, devices)
    if args.json:
        args.json.write_text(json.dumps(
            {f"{w} {d} {p}": r for (w, d, p), r in results.items()}, indent=1))
    say(f"run folders in {work}")
    if steps.failed:
        say(f"FAILED: {', '.join(steps.failed)}")
        return 1
    say("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
