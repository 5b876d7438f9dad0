"""Issue 22 on a device: the user's own image folder and TorchScript models (gpu_check.py's `own`
workload; it runs on the CPU too, which is how it is tried without a GPU).

In a scratch folder, scripts/mnist_folder_teacher.py writes the first 10,000 MNIST training
digits and 2,000 test digits as PNGs in train/<digit>/ and test/<digit>/, trains its CNN teacher
on the device for 2 epochs in plain PyTorch, and scripts it and an untrained small CNN student.
Then `kd-tui --batch presets/images.toml` on the device distils the teacher into a built-in MLP
student and into the TorchScript student (2 student epochs each), and checks:
  - the teacher's test accuracy in summary.json is the one PyTorch gives with teacher.pt on the
    same digits on the device;
  - each TorchScript student kd-tui trained (baseline.pt, distilled.pt), loaded with
    torch.jit.load on the device, scores kd-tui's test accuracy;
to within ONE_EXAMPLE on cuda (an argmax may flip between two kernels' last bits; on the CPU it
is exact). Returns teacher, baseline and distilled test accuracies, the paired test and
samples/s.

    python3 scripts/gpu_own_model.py BINARY PRESETS_DIR MNIST_DIR DEVICE SCRATCH
"""

import json
import pathlib
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
import mnist_folder_teacher as folder  # noqa: E402
from bench_presets import kd_tui_run, samples_per_sec  # noqa: E402

TRAIN, TEST = 10_000, 2_000
# Largest difference allowed between kd-tui's and PyTorch's test accuracy, in examples.
ONE_EXAMPLE = {"cpu": 0, "cuda": 1}
STUDENTS = {
    "mlp": 'student.model={{ kind = "mlp", hidden = [128], activation = "relu", dropout = 0.0 }}',
    "torchscript": 'student.model={{ kind = "torchscript", path = "{student}" }}',
}


def accuracy(module, x, y, device):
    """Test accuracy of `module` (eval mode, no gradients) on x, y, in batches, on `device`."""
    module.eval()
    with torch.no_grad():
        predicted = torch.cat([module(b.to(device)).argmax(1).cpu() for b in x.split(500)])
    return (predicted == y).double().mean().item()


def check(binary, presets, mnist, device, scratch, timeout):
    scratch = pathlib.Path(scratch)
    made = folder.make(mnist, str(scratch), epochs=2, n_train=TRAIN, n_test=TEST, device=device)
    test_x = folder.tensor(folder.idx(f"{mnist}/t10k-images-idx3-ubyte")[:TEST])
    test_y = torch.from_numpy(folder.idx(f"{mnist}/t10k-labels-idx1-ubyte")[:TEST].astype(np.int64))
    slack = ONE_EXAMPLE["cuda" if device.startswith("cuda") else "cpu"] / TEST + 1e-9
    sets = [
        f'data.path="{scratch / "images"}"',
        "data.size=[28, 28]",
        "data.channels=1",
        "data.normalize={ mean = [0.1307], std = [0.3081] }",
        f'teacher.model={{ kind = "torchscript", path = "{scratch / "teacher.pt"}" }}',
        "student.epochs=2",
        f'device="{device}"',
    ]
    teacher = torch.jit.load(str(scratch / "teacher.pt"), map_location=device)
    teacher_acc = accuracy(teacher, test_x, test_y, device)
    results, problems = {}, []
    for name, student in STUDENTS.items():
        run_sets = sets + [student.format(student=scratch / "student.pt")]
        (scratch / name).mkdir(exist_ok=True)
        run = kd_tui_run(binary, str(pathlib.Path(presets) / "images.toml"), run_sets,
                         scratch / name, timeout)
        out = scratch / name / "kd-tui-run"
        summary = json.loads((out / "summary.json").read_text())
        if not summary["device"].startswith(device.split(":")[0]):
            problems.append(f"{name}: ran on {summary['device']}, not {device}")
        in_torch = {"teacher": teacher_acc}
        if name == "torchscript":
            for phase in ("baseline", "distilled"):
                module = torch.jit.load(str(out / f"{phase}.pt"), map_location=device)
                in_torch[phase] = accuracy(module, test_x, test_y, device)
        for phase, acc in in_torch.items():
            kd = summary[phase]["test_acc"]
            if abs(kd - acc) > slack:
                problems.append(f"{name} {phase}: kd-tui {kd:.4f}, PyTorch {acc:.4f}")
        paired = summary["comparison"]["paired"]
        results[name] = {
            "device": summary["device"],
            "test_acc": {p: summary[p]["test_acc"] for p in ("teacher", "baseline", "distilled")},
            "pytorch_test_acc": in_torch,
            "paired": {k: paired[k] for k in ("n", "gain_pp", "p_value")},
            "distilled_samples_per_s": samples_per_sec(run, "distilled"),
        }
        accs = ", ".join(f"{p} {100 * a:.2f}%" for p, a in results[name]["test_acc"].items())
        print(f"    {name} student on {summary['device']}: {accs}; paired gain "
              f"{paired['gain_pp']:+.2f} pp (p {paired['p_value']:.3g}, n {paired['n']}); "
              f"distilled {results[name]['distilled_samples_per_s']:,.0f} samples/s", flush=True)
    if problems:
        raise RuntimeError("; ".join(problems))
    return {"teacher_made": made, "students": results}


if __name__ == "__main__":
    print(json.dumps(check(*sys.argv[1:6], timeout=None), indent=1))
