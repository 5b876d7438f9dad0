"""A kd-tui preset's whole run, written as the plain PyTorch eager script a user would write.

The same work as `kd-tui --batch PRESET`: load and split the data, train the teacher, the
baseline student and the soft-distilled student (teacher logits computed once over the training
set), each with per-epoch validation keeping the best weights, the last and best weights scored on
test, the weights saved, latency measured at batch 1 and at a large batch, step and epoch
records written to metrics.jsonl, and the paired test of baseline against distilled. Threads are
PyTorch's defaults. scripts/bench_presets.py runs it side by side with kd-tui.

Supports what the benchmarked presets use: digits and MNIST data, MLP and CNN models, Adam /
AdamW / SGD with a constant lr, no augmentation, method "soft". Anything else exits with 2.

    python3 scripts/pytorch_preset.py PRESET [--set KEY=VALUE ...] [--device cpu|cuda|cuda:N] --out DIR
writes DIR/result.json: per phase its training seconds, epochs, training examples and test
accuracy, and `first_step_at`, the wall time just before the first optimizer step.

--device (default cpu; the preset's `device` key is not read): on a GPU the data moves to the
device once, before any timing, and every time taken waits for the device (synchronised).
Exits 1 when the device is not usable.
"""

import argparse
import gzip
import json
import math
import pathlib
import random
import statistics
import struct
import sys
import time
import tomllib

import torch
import torch.nn.functional as F
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVAL_CHUNK = 1024
DEVICE = torch.device("cpu")  # set by main from --device


def sync():
    """Waits for the device's queued work, so that a time taken after it includes that work."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def refuse(message):
    print(f"pytorch_preset: {message}", file=sys.stderr)
    sys.exit(2)


def load_preset(path, sets):
    preset = tomllib.loads(pathlib.Path(path).read_text())
    for item in sets:
        key, _, value = item.partition("=")
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            pass  # a bare string, as kd-tui's --set takes it
        *parents, last = key.split(".")
        node = preset
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return preset


def read_digits():
    rows = gzip.decompress((ROOT / "assets/digits.csv.gz").read_bytes()).decode().split()
    values = torch.tensor([[float(v) for v in r.split(",")] for r in rows])
    return values[:, :-1].reshape(-1, 1, 8, 8), values[:, -1].long(), 16.0


def read_idx(path):
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def read_mnist(folder):
    def pair(stem):
        def find(name):
            plain = folder / name
            return plain if plain.exists() else folder / f"{name}.gz"

        images = read_idx(find(f"{stem}-images-idx3-ubyte")).float().unsqueeze(1)
        return images, read_idx(find(f"{stem}-labels-idx1-ubyte")).long()

    return pair("train"), pair("t10k")


def stratified(labels, val_fraction, test_fraction, seed):
    """Per class: shuffle, then take test, validation and train shares (as kd-tui does)."""
    rng = random.Random(seed)
    train, val, test = [], [], []
    for c in range(int(labels.max()) + 1):
        idx = (labels == c).nonzero().flatten().tolist()
        rng.shuffle(idx)
        n_test = math.floor(len(idx) * test_fraction + 0.5)  # Rust's round: halves away from 0
        n_val = min(math.floor(len(idx) * val_fraction + 0.5), len(idx) - n_test)
        test += idx[:n_test]
        val += idx[n_test : n_test + n_val]
        train += idx[n_test + n_val :]
    rng.shuffle(train)
    return train, val, test


def load_data(cfg, seed):
    source = cfg["source"]
    if source == "digits":
        x, y, max_value = read_digits()
        train, val, test = stratified(y, cfg["val_fraction"], cfg["test_fraction"], seed)
        splits = [(x[i], y[i]) for i in (train, val, test)]
    elif source == "mnist":
        (x, y), test_pair = read_mnist(pathlib.Path(cfg["path"]))
        max_value = 255.0
        train, val, _ = stratified(y, cfg["val_fraction"], 0.0, seed)
        splits = [(x[train], y[train]), (x[val], y[val]), test_pair]
    else:
        refuse(f"data.source {source!r} is not supported here (digits, mnist)")
    if "train_limit" in cfg:
        x, y = splits[0]
        splits[0] = (x[: cfg["train_limit"]], y[: cfg["train_limit"]])
    if cfg.get("normalize", "scale") != "scale":
        refuse("only data.normalize = 'scale' is supported here")
    return [(x / max_value, y) for x, y in splits]


class Mlp(nn.Module):
    def __init__(self, inputs, hidden, classes, dropout):
        super().__init__()
        sizes = [inputs, *hidden, classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.dropout = dropout

    def forward(self, x):
        x = x.flatten(1)
        *hidden, last = self.layers
        for layer in hidden:
            x = F.relu(layer(x))
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return last(x)


class Cnn(nn.Module):
    def __init__(self, cfg, shape, classes):
        super().__init__()
        channels, h, w = shape
        k = cfg.get("kernel", 3)
        bn = cfg.get("batch_norm", False)
        pool = cfg.get("pool", "max")
        blocks = []
        for out in cfg["channels"]:
            blocks.append(nn.Conv2d(channels, out, k, padding=k // 2, bias=not bn))
            if bn:
                blocks.append(nn.BatchNorm2d(out))
            blocks.append(nn.ReLU())
            if pool == "max":
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            channels = out
        self.features = nn.Sequential(*blocks)
        self.classifier = Mlp(channels * h * w, cfg.get("hidden", []), classes, cfg.get("dropout", 0.0))

    def forward(self, x):
        return self.classifier(self.features(x))


def build(model, shape, classes):
    kind = model["kind"]
    if kind == "mlp":
        if model.get("activation", "relu") != "relu":
            refuse("only relu MLPs are supported here")
        return Mlp(math.prod(shape), model["hidden"], classes, model.get("dropout", 0.0))
    if kind == "cnn":
        return Cnn(model, shape, classes)
    refuse(f"model kind {kind!r} is not supported here (mlp, cnn)")


def optimizer(net, params):
    kind, lr, wd = net.get("optimizer", "adam"), net["lr"], net.get("weight_decay", 0.0)
    augment = net.get("augment", {})
    if net.get("schedule", "constant") != "constant" or augment.get("shift") or augment.get("flip"):
        refuse("only a constant lr and no augmentation are supported here")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=net.get("momentum", 0.0), weight_decay=wd)


def soft_kd_loss(student, teacher, labels, temperature, alpha):
    """Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE."""
    log_q = F.log_softmax(student / temperature, dim=-1)
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    kd = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * temperature**2
    return alpha * kd + (1 - alpha) * F.cross_entropy(student, labels)


@torch.no_grad()
def logits_of(model, x):
    model.eval()
    return torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


def accuracy(model, split):
    x, y = split
    logits = logits_of(model, x)
    return (logits.argmax(-1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def median_us(f, reps):
    for _ in range(min(reps, 10)):
        f()
    times = []
    started = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - started < 2):
        sync()
        t = time.perf_counter()
        f()
        sync()
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


@torch.no_grad()
def latency(model, test_x):
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    batch1 = median_us(lambda: model(test_x[:1]), 200)
    torch.set_num_threads(threads)
    many = test_x[:EVAL_CHUNK]
    return batch1, median_us(lambda: model(many), 20) / len(many)


def train_phase(name, net, model, data, log, started, teacher_logits=None, distill=None):
    """Trains one phase as kd-tui does; returns its result row. Its training time counts from
    `started` (before the model was built and, when distilling, the teacher's logits computed)."""
    (x, y), val, test = data
    opt = optimizer(net, model.parameters())
    best, best_val, log_every = None, -1.0, log["every"]
    for epoch in range(1, net["epochs"] + 1):
        model.train()
        order = torch.randperm(len(x), device=x.device)
        losses = []
        for start in range(0, len(x), net["batch_size"]):
            idx = order[start : start + net["batch_size"]]
            logits = model(x[idx])
            if teacher_logits is None:
                loss = F.cross_entropy(logits, y[idx])
            else:
                loss = soft_kd_loss(logits, teacher_logits[idx], y[idx], *distill)
            log["first_step_at"] = log.get("first_step_at") or time.time()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            if len(losses) % log_every == 0:
                mean = torch.stack(losses[-log_every:]).mean().item()
                log["file"].write(json.dumps({"phase": name, "epoch": epoch, "loss": mean}) + "\n")
        val_acc, val_loss = accuracy(model, val)
        train_loss = torch.stack(losses).mean().item()
        log["file"].write(json.dumps({"phase": name, "epoch": epoch, "train_loss": train_loss,
                                      "val_acc": val_acc, "val_loss": val_loss}) + "\n")
        log["file"].flush()
        if val_acc > best_val:
            best_val, best = val_acc, {k: v.clone() for k, v in model.state_dict().items()}
    test_last, _ = accuracy(model, test)
    model.load_state_dict(best)
    sync()
    seconds = time.perf_counter() - started
    test_acc, _ = accuracy(model, test)
    torch.save(model.state_dict(), log["dir"] / f"{name}.pt")
    batch1_us, per_sample_us = latency(model, test[0])
    return dict(train_seconds=seconds, epochs=net["epochs"], train_examples=len(x),
                test_acc=test_acc, test_acc_last=test_last, best_val_acc=best_val,
                batch1_us=batch1_us, per_sample_us=per_sample_us)


def mcnemar_p(only_baseline, only_distilled):
    """Exact two-sided McNemar test: binomial(n, 1/2) on the discordant pairs."""
    n, k = only_baseline + only_distilled, min(only_baseline, only_distilled)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--set", action="append", default=[], dest="sets")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--device", default="cpu", help="cpu (default) | cuda | cuda:N")
    args = parser.parse_args()
    global DEVICE
    try:
        DEVICE = torch.device(args.device)
    except RuntimeError as e:
        refuse(f"--device {args.device}: {e}")
    if DEVICE.type == "cuda":
        if not torch.cuda.is_available():
            print(f"pytorch_preset: --device {args.device}: CUDA is not available to this PyTorch "
                  f"{torch.__version__} (CUDA build: {torch.version.cuda or 'no'}; "
                  f"devices: {torch.cuda.device_count()})", file=sys.stderr)
            sys.exit(1)
        if DEVICE.index is not None and DEVICE.index >= torch.cuda.device_count():
            print(f"pytorch_preset: --device {args.device}: only {torch.cuda.device_count()} "
                  "CUDA device(s)", file=sys.stderr)
            sys.exit(1)
    elif DEVICE.type != "cpu":
        refuse(f"--device {args.device}: only cpu and cuda are supported here")
    preset = load_preset(args.preset, args.sets)
    if preset.get("distill", {}).get("method", "soft") != "soft":
        refuse("only distill.method = 'soft' is supported here")
    args.out.mkdir(parents=True, exist_ok=True)
    seed = preset.get("seed", 7)
    torch.manual_seed(seed)
    data = [(x.to(DEVICE), y.to(DEVICE)) for x, y in load_data(preset["data"], seed)]
    shape, classes = tuple(data[0][0].shape[1:]), int(data[0][1].max()) + 1
    log = {"every": preset.get("log_every", 10), "dir": args.out,
           "file": open(args.out / "metrics.jsonl", "w")}
    teacher_cfg, student_cfg = preset["teacher"], preset["student"]
    results = {}
    sync()
    started = time.perf_counter()
    teacher = build(teacher_cfg["model"], shape, classes).to(DEVICE)
    results["teacher"] = train_phase("teacher", teacher_cfg, teacher, data, log, started)
    student_init = build(student_cfg["model"], shape, classes).to(DEVICE).state_dict()
    students = {}
    for phase in ("baseline", "distilled"):
        if phase == "baseline" and not student_cfg.get("baseline", True):
            continue
        sync()
        started = time.perf_counter()
        student = build(student_cfg["model"], shape, classes).to(DEVICE)
        student.load_state_dict(student_init)  # the same initialisation for both
        kd = {}
        if phase == "distilled":
            d = preset.get("distill", {})
            kd = dict(teacher_logits=logits_of(teacher, data[0][0]),
                      distill=(d.get("temperature", 4.0), d.get("alpha", 0.9)))
        results[phase] = train_phase(phase, student_cfg, student, data, log, started, **kd)
        students[phase] = student
    x_test, y_test = data[2]
    if len(students) == 2:
        right = {p: logits_of(m, x_test).argmax(-1) == y_test for p, m in students.items()}
        only_b = int((right["baseline"] & ~right["distilled"]).sum())
        only_d = int((right["distilled"] & ~right["baseline"]).sum())
        results["paired"] = dict(only_baseline=only_b, only_distilled=only_d,
                                 p=mcnemar_p(only_b, only_d))
    out = dict(phases=results, first_step_at=log["first_step_at"], test_examples=len(y_test),
               threads=torch.get_num_threads(), device=str(DEVICE),
               device_name=torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu")
    (args.out / "result.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
