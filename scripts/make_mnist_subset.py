#!/usr/bin/env python3
"""Writes the MNIST subset that kd-tui embeds (assets/mnist-subset/), from the MNIST IDX files.

    python3 scripts/make_mnist_subset.py /path/to/mnist [assets/mnist-subset]

- train: 500 images of each digit from MNIST's training set (5,000);
- val:   500 other images of each digit from MNIST's training set (5,000);
- test:  all 10,000 images of MNIST's test set (t10k), in their order.

Train and validation images are drawn per class with numpy's RandomState(23), so the subset is
stratified and the same on every run of this script. Files are gzipped IDX (the format of the
originals), written with mtime 0 so that the bytes are reproducible too.
"""
import gzip
import os
import sys

import numpy as np

PER_CLASS = {"train": 500, "val": 500}
SEED = 23


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(folder, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    sys.exit(f"{stem}[.gz] not found in {folder}")


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    with open(path, "wb") as raw, gzip.GzipFile(
        fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename=""
    ) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else "assets/mnist-subset"
    os.makedirs(out, exist_ok=True)
    images = read_idx(find(src, "train-images-idx3-ubyte"))
    labels = read_idx(find(src, "train-labels-idx1-ubyte"))
    rng = np.random.RandomState(SEED)
    picked = {"train": [], "val": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split, n in PER_CLASS.items():
            picked[split].append(idx[start : start + n])
            start += n
    splits = {}
    for split, parts in picked.items():
        # Classes mixed, in MNIST's own order.
        idx = np.sort(np.concatenate(parts))
        splits[split] = (images[idx], labels[idx])
    splits["test"] = (
        read_idx(find(src, "t10k-images-idx3-ubyte")),
        read_idx(find(src, "t10k-labels-idx1-ubyte")),
    )
    total = 0
    for split, (x, y) in splits.items():
        for kind, array in (("images", x), ("labels", y)):
            path = os.path.join(out, f"{split}-{kind}.gz")
            write_idx(path, array)
            total += os.path.getsize(path)
        counts = np.bincount(y, minlength=10)
        print(f"{split}: {len(y)} images, per class {counts.tolist()}")
    print(f"{total} bytes compressed in {out}")


if __name__ == "__main__":
    main()
