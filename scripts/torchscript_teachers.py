"""TorchScript modules for tests/torchscript_e2e.rs, written with the set-up's PyTorch.

Usage: torchscript_teachers.py DIR
DIR holds the digits splits as kd-tui makes them (train_x, train_y, test_x, test_y: raw
little-endian f32 / i64, and shape.json with the example shape). Writes into DIR:
  teacher.pt      a small CNN (batch norm, dropout) trained a few hundred steps on train_x
  student_cnn.pt  a smaller CNN (batch norm, dropout), untrained, scripted
  student_mlp.pt  an MLP, untrained, traced
  flat.pt         Linear(10, 10) on flattened inputs: the wrong input shape for 64 pixels
  classes.pt      a CNN with 7 outputs instead of 10
  tuple.pt        the CNN's logits as a tuple (logits, logits)
and prints JSON: the teacher's parameter count and its eval-mode test accuracy.

Usage: torchscript_teachers.py DIR predict ORIGINAL.pt (WEIGHTS.safetensors TRAINED.pt)...
Prints a JSON list for students kd-tui trained from ORIGINAL.pt, one object per pair: the test
accuracy and per-class accuracy of TRAINED.pt as torch.jit.load gives it, and the largest
difference between its test logits and those of ORIGINAL.pt with WEIGHTS loaded into it by name
(load_state_dict, strict).
"""

import json
import os
import sys

import numpy as np
import torch
from torch import nn

out = sys.argv[1]
shape = json.load(open(os.path.join(out, "shape.json")))["input"]


def read(name, dtype):
    return torch.from_numpy(np.fromfile(os.path.join(out, name), dtype=dtype).copy())


train_x = read("train_x", "<f4").view(-1, *shape)
train_y = read("train_y", "<i8")
test_x = read("test_x", "<f4").view(-1, *shape)
test_y = read("test_y", "<i8")


class Cnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(shape[0], 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * (shape[1] // 4) * (shape[2] // 4), 32)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))


class SmallCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(shape[0], 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * (shape[1] // 2) * (shape[2] // 2), classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


class Mlp(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.hidden = nn.Linear(shape[0] * shape[1] * shape[2], 32)
        self.out = nn.Linear(32, classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x.flatten(1))))


def safetensors(path):
    """A safetensors file's tensors by name (the format: a length, a JSON header, the bytes)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        data = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype=dtypes[info["dtype"]])
        out[name] = torch.from_numpy(data.copy()).view(info["shape"])
    return out


def predict(original, weights, trained):
    module = torch.jit.load(trained)
    reference = torch.jit.load(original)
    reference.load_state_dict(safetensors(weights), strict=True)
    reference.eval()
    with torch.no_grad():
        logits = module(test_x)
        expected = reference(test_x)
    pred = logits.argmax(1)
    per_class = [
        (pred[test_y == c] == c).double().mean().item() if (test_y == c).any() else None
        for c in range(logits.shape[1])
    ]
    return {
        "training": module.training,
        "test_acc": (pred == test_y).double().mean().item(),
        "per_class_acc": per_class,
        "max_logit_diff": (logits - expected).abs().max().item(),
    }


if sys.argv[2:3] == ["predict"]:
    pairs = sys.argv[4:]
    print(json.dumps([predict(sys.argv[3], w, t) for w, t in zip(pairs[::2], pairs[1::2])]))
    sys.exit(0)


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = Cnn()

    def forward(self, x):
        logits = self.cnn(x)
        return logits, logits


torch.manual_seed(0)
teacher = Cnn()
opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
teacher.train()
for step in range(300):
    batch = torch.randint(0, len(train_y), (64,))
    loss = nn.functional.cross_entropy(teacher(train_x[batch]), train_y[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
teacher.eval()
with torch.no_grad():
    acc = (teacher(test_x).argmax(1) == test_y).double().mean().item()
torch.jit.script(teacher).save(os.path.join(out, "teacher.pt"))
torch.manual_seed(1)
torch.jit.script(SmallCnn()).save(os.path.join(out, "student_cnn.pt"))
torch.jit.trace(Mlp(), test_x[:2]).save(os.path.join(out, "student_mlp.pt"))
torch.jit.script(Flat().eval()).save(os.path.join(out, "flat.pt"))
torch.jit.script(Cnn(classes=7).eval()).save(os.path.join(out, "classes.pt"))
torch.jit.script(Pair().eval()).save(os.path.join(out, "tuple.pt"))
params = sum(p.numel() for p in teacher.parameters())
print(json.dumps({"params": params, "test_acc": acc, "test_examples": len(test_y)}))
