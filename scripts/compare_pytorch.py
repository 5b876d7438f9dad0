"""Times benches/train_step.rs's training steps in plain PyTorch and compares them with kd-tui's.

Same steps, shapes and thread count as the criterion bench: a teacher step (cross-entropy, Adam)
and a soft-distillation student step (teacher logits computed beforehand, Adam), for digits-sized
and MNIST-sized MLPs, on the CPU. kd-tui's figures are criterion's mean estimates, read from
<criterion-dir>/train_step/<step>/<workload>/new/estimates.json; run
`cargo bench --bench train_step` first (scripts/kd bench does both).
"""

import argparse
import json
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

# kd-tui's MLP and soft-KD loss in plain PyTorch, shared with the whole-preset comparison.
from pytorch_preset import Mlp, soft_kd_loss

# Keep in step with benches/train_step.rs.
WORKLOADS = {
    "digits": dict(inputs=64, classes=10, teacher=[256, 256], student=[32], batch=64),
    "mnist": dict(inputs=784, classes=10, teacher=[1200, 1200], student=[64], batch=128),
}
# (PyTorch step, kd-tui's criterion step): kd-tui's fused soft-KD step against the same autograd step.
STEPS = [
    ("teacher_ce_adam", "teacher_ce_adam"),
    ("student_soft_kd_adam", "student_soft_kd_adam"),
    ("student_soft_kd_adam", "student_soft_kd_fused_adam"),
]
TEACHER_DROPOUT = 0.2
LR = 1e-3
TEMPERATURE = 4.0
ALPHA = 0.9


def step_fn(step, w):
    """A closure running one optimizer step of `step` on workload `w`."""
    x = torch.randn(w["batch"], w["inputs"])
    y = torch.randint(w["classes"], (w["batch"],))
    teacher = Mlp(w["inputs"], w["teacher"], w["classes"], TEACHER_DROPOUT).train()
    if step == "teacher_ce_adam":
        model, loss_of = teacher, lambda logits: F.cross_entropy(logits, y)
    else:
        with torch.no_grad():
            teacher_logits = teacher.eval()(x)
        model = Mlp(w["inputs"], w["student"], w["classes"], 0.0).train()
        loss_of = lambda logits: soft_kd_loss(logits, teacher_logits, y, TEMPERATURE, ALPHA)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def one_step():
        # tch's backward_step: zero_grad, backward, step.
        opt.zero_grad()
        loss_of(model(x)).backward()
        opt.step()

    return one_step


def mean_seconds(fn, warm_up, measure):
    """Mean wall time of fn() after warming up, like criterion's mean estimate."""
    end = time.perf_counter() + warm_up
    while time.perf_counter() < end:
        fn()
    iterations, start = 0, time.perf_counter()
    while True:
        fn()
        iterations += 1
        elapsed = time.perf_counter() - start
        if elapsed >= measure:
            return elapsed / iterations


def criterion_estimate(criterion_dir, step, workload):
    """(mean seconds, file time) of criterion's latest run of this step, or None."""
    path = criterion_dir / "train_step" / step / workload / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["mean"]["point_estimate"] * 1e-9, path.stat().st_mtime
    except FileNotFoundError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--criterion-dir", type=pathlib.Path, default=pathlib.Path("target/criterion"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="intra-op threads (default: libtorch's default, which tch uses too)")
    parser.add_argument("--warm-up", type=float, default=1.0, help="seconds per step kind")
    parser.add_argument("--measure", type=float, default=3.0, help="seconds per step kind")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, cpu, {torch.get_num_threads()} intra-op threads")
    rows, measured_at = [], []
    for workload, w in WORKLOADS.items():
        for pytorch_step, step in STEPS:
            pytorch = mean_seconds(step_fn(pytorch_step, w), args.warm_up, args.measure)
            estimate = criterion_estimate(args.criterion_dir, step, workload)
            kd_tui = None
            if estimate is not None:
                kd_tui, mtime = estimate
                measured_at.append(mtime)
            rows.append((workload, step, pytorch, kd_tui))

    header = f"{'workload':<8}  {'step (kd-tui)':<26}  {'PyTorch ms':>10}  {'kd-tui ms':>10}  {'PyTorch/kd-tui':>14}"
    print(header)
    print("-" * len(header))
    for workload, step, pytorch, kd_tui in rows:
        if kd_tui is None:
            theirs, ratio = "n/a", "n/a"
        else:
            theirs, ratio = f"{kd_tui * 1e3:.3f}", f"{pytorch / kd_tui:.2f}"
        print(f"{workload:<8}  {step:<26}  {pytorch * 1e3:>10.3f}  {theirs:>10}  {ratio:>14}")
    print("ratio > 1: kd-tui's step is faster than plain PyTorch's")
    if measured_at:
        age = time.time() - min(measured_at)
        print(f"kd-tui figures: criterion results from {age / 60:.0f} min ago; "
              "both sides are timed on this machine, so run them back to back on an idle one")
    if len(measured_at) < len(rows):
        print(f"criterion results missing under {args.criterion_dir}; run `cargo bench --bench train_step` first",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
