"""The "your own model and data" example, end to end, in plain PyTorch: MNIST written out as an
image folder, and a teacher trained on it and saved as TorchScript, as a user arrives with them.

Usage: mnist_folder_teacher.py MNIST_DIR OUT [--epochs N]
MNIST_DIR holds the four IDX files (.gz or not). Writes:
  OUT/images/train/<digit>/<n>.png, OUT/images/test/<digit>/<n>.png   (70,000 PNGs)
  OUT/teacher.pt   a CNN trained on images/train, inputs normalised with MNIST's mean and std
  OUT/student.pt   an untrained small CNN, scripted, for a TorchScript student
and prints JSON: the teacher's parameters, test errors and accuracy (eval mode), and seconds.
Needs Pillow (pip install pillow) only to write the PNGs.
"""

import gzip
import json
import os
import sys
import time

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


def write_folder(root, images, labels):
    from PIL import Image  # only here: the models below are imported by a benchmark too

    for digit in range(10):
        os.makedirs(os.path.join(root, str(digit)), exist_ok=True)
    for n, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(root, str(label), f"{n:05}.png")
        if not os.path.exists(path):
            Image.fromarray(image, mode="L").save(path)


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


def main():
    mnist, out = sys.argv[1], sys.argv[2]
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 2
    start = time.time()
    train_x, train_y = idx(f"{mnist}/train-images-idx3-ubyte"), idx(f"{mnist}/train-labels-idx1-ubyte")
    test_x, test_y = idx(f"{mnist}/t10k-images-idx3-ubyte"), idx(f"{mnist}/t10k-labels-idx1-ubyte")
    write_folder(f"{out}/images/train", train_x, train_y)
    write_folder(f"{out}/images/test", test_x, test_y)

    def tensor(images):
        return (torch.from_numpy(images.copy()).float().div(255).sub(MEAN).div(STD)).unsqueeze(1)

    xs, ys = tensor(train_x), torch.from_numpy(train_y.astype(np.int64))
    torch.manual_seed(0)
    teacher = Teacher()
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for _ in range(epochs):
        teacher.train()
        for batch in torch.randperm(len(ys)).split(128):
            loss = nn.functional.cross_entropy(teacher(xs[batch]), ys[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    teacher.eval()
    with torch.no_grad():
        predicted = torch.cat([teacher(b).argmax(1) for b in tensor(test_x).split(1000)])
    errors = int((predicted != torch.from_numpy(test_y.astype(np.int64))).sum())
    torch.jit.script(teacher).save(f"{out}/teacher.pt")
    torch.jit.script(Student()).save(f"{out}/student.pt")
    print(json.dumps({
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "test_errors": errors,
        "test_acc": 1 - errors / len(test_y),
        "seconds": round(time.time() - start, 1),
    }))


if __name__ == "__main__":
    main()
