"""One training step of a TorchScript student: kd-tui against the same module in PyTorch eager.

Writes an MNIST-sized CNN student (batch norm, about 5 k parameters; as
scripts/mnist_folder_teacher.py's) with torch.jit.script, then by turns, --rounds times:
  kd-tui   `cargo bench --bench torchscript_step` (benches/torchscript_step.rs): the scripted
           module in a VarStore, training mode, the fused soft-distillation loss, kd-tui's Adam;
  PyTorch  the same nn.Module, eager, soft-distillation loss through autograd, torch.optim.Adam;
both on a batch of 128 random 28x28 inputs with teacher logits computed beforehand, on the CPU
with the same intra-op threads. Prints each round's means and the median ratio PyTorch / kd-tui
(> 1: kd-tui's step is faster).
Usage: bench_torchscript_step.py [--rounds 5] [--threads N] [--measure S]
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

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from compare_pytorch import mean_seconds  # noqa: E402
from mnist_folder_teacher import Student  # noqa: E402
from pytorch_preset import soft_kd_loss  # noqa: E402

BATCH, CLASSES, TEMPERATURE, ALPHA, LR = 128, 10, 4.0, 0.9, 3e-3
ROOT = pathlib.Path(__file__).resolve().parent.parent


def eager_step():
    torch.manual_seed(0)
    model = Student().train()
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(CLASSES, (BATCH,))
    teacher = torch.randn(BATCH, CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def one_step():
        opt.zero_grad()
        soft_kd_loss(model(x), teacher, y, TEMPERATURE, ALPHA).backward()
        opt.step()

    return one_step


def kd_tui_step(module, threads):
    env = dict(os.environ, KD_TUI_BENCH_MODULE=str(module), KD_TUI_BENCH_THREADS=str(threads))
    run = subprocess.run(["cargo", "bench", "--quiet", "--bench", "torchscript_step"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"cargo bench --bench torchscript_step failed:\n{run.stderr}")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    estimates = target / "criterion/torchscript_step/student_soft_kd_fused_adam/new/estimates.json"
    return json.loads(estimates.read_text())["mean"]["point_estimate"] * 1e-9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--measure", type=float, default=3.0, help="seconds of PyTorch steps per round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    subprocess.run(["cargo", "bench", "--no-run", "--quiet", "--bench", "torchscript_step"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        module = pathlib.Path(tmp) / "student.pt"
        torch.jit.script(Student()).save(str(module))
        print(f"PyTorch {torch.__version__}, cpu, {args.threads} intra-op threads, batch {BATCH}, "
              f"{sum(p.numel() for p in Student().parameters())} parameters")
        ratios = []
        for r in range(args.rounds):
            # Alternate which side goes first, so that neither always runs on a warmer machine.
            sides = [("kd-tui", lambda: kd_tui_step(module, args.threads)),
                     ("pytorch", lambda: mean_seconds(eager_step(), 1.0, args.measure))]
            if r % 2:
                sides.reverse()
            times = {name: run() for name, run in sides}
            ratios.append(times["pytorch"] / times["kd-tui"])
            print(f"round {r + 1}: PyTorch eager {times['pytorch'] * 1e3:.3f} ms, "
                  f"kd-tui {times['kd-tui'] * 1e3:.3f} ms, ratio {ratios[-1]:.2f}", flush=True)
        print(f"median ratio PyTorch / kd-tui: {statistics.median(ratios):.2f} "
              f"[{min(ratios):.2f}-{max(ratios):.2f}] over {len(ratios)} rounds "
              "(> 1: kd-tui's step is faster)")


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"({time.time() - start:.0f} s)")
