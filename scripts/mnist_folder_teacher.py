"""The "your own model and data" example, end to end, in plain PyTorch: MNIST written out as an
image folder, and a teacher trained on it and saved as TorchScript, as a user arrives with them.

Usage: mnist_folder_teacher.py MNIST_DIR OUT [--epochs N] [--train N] [--test N] [--device D]
MNIST_DIR holds the four IDX files (.gz or not). Writes:
  OUT/images/train/<digit>/<n>.png, OUT/images/test/<digit>/<n>.png   (70,000 PNGs, or the
                   first --train and --test images)
  OUT/teacher.pt   a CNN trained on images/train (on --device, default cpu), inputs normalised
                   with MNIST's mean and std
  OUT/student.pt   an untrained small CNN, scripted, for a TorchScript student
and prints JSON: the teacher's parameters, test errors and accuracy (eval mode), and seconds.
The PNGs are written with zlib alone (no Pillow), so that a GPU box without it runs this too
(scripts/gpu_own_model.py).
"""

import gzip
import json
import os
import sys
import struct
import time
import zlib

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.1307, 0.3081


def idx(path):
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def png(image):
    """An 8-bit gray PNG of `image` ([h, w] uint8): signature, IHDR, one IDAT (each row after
    filter byte 0), IEND."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = image.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), image], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def write_folder(root, images, labels):
    for digit in range(10):
        os.makedirs(os.path.join(root, str(digit)), exist_ok=True)
    for n, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(root, str(label), f"{n:05}.png")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(png(image))


def tensor(images):
    """MNIST's bytes as the normalised floats the teacher takes: [n, 1, 28, 28]."""
    return (torch.from_numpy(images.copy()).float().div(255).sub(MEAN).div(STD)).unsqueeze(1)


class Teacher(nn.Module):
    """A CNN with batch norm and dropout, about 0.4 M parameters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)
        )

    def forward(self, x):
        return self.head(self.features(x))


class Student(nn.Module):
    """A small CNN a user might want to ship: about 5 k parameters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def option(name, default, kind=int):
    return kind(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def make(mnist, out, epochs=2, n_train=None, n_test=None, device="cpu"):
    """Writes the folder and the two modules into `out`; what main prints."""
    start = time.time()
    train_x, train_y = idx(f"{mnist}/train-images-idx3-ubyte"), idx(f"{mnist}/train-labels-idx1-ubyte")
    test_x, test_y = idx(f"{mnist}/t10k-images-idx3-ubyte"), idx(f"{mnist}/t10k-labels-idx1-ubyte")
    train_x, train_y, test_x, test_y = train_x[:n_train], train_y[:n_train], test_x[:n_test], test_y[:n_test]
    write_folder(f"{out}/images/train", train_x, train_y)
    write_folder(f"{out}/images/test", test_x, test_y)

    xs, ys = tensor(train_x).to(device), torch.from_numpy(train_y.astype(np.int64)).to(device)
    torch.manual_seed(0)
    teacher = Teacher().to(device)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for _ in range(epochs):
        teacher.train()
        for batch in torch.randperm(len(ys), device=device).split(128):
            loss = nn.functional.cross_entropy(teacher(xs[batch]), ys[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    teacher.eval()
    with torch.no_grad():
        predicted = torch.cat([teacher(b.to(device)).argmax(1).cpu() for b in tensor(test_x).split(1000)])
    errors = int((predicted != torch.from_numpy(test_y.astype(np.int64))).sum())
    # Saved from the CPU, as a user ships a model: kd-tui moves it to the run's device.
    torch.jit.script(teacher.cpu()).save(f"{out}/teacher.pt")
    torch.jit.script(Student()).save(f"{out}/student.pt")
    return {
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "test_errors": errors,
        "test_acc": 1 - errors / len(test_y),
        "seconds": round(time.time() - start, 1),
    }


def main():
    print(json.dumps(make(sys.argv[1], sys.argv[2], option("--epochs", 2), option("--train", None),
                          option("--test", None), option("--device", "cpu", str))))


if __name__ == "__main__":
    main()
