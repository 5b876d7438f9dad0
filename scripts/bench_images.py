"""Loading an image folder: kd-tui next to PIL through a torch DataLoader, side by side.

Builds (once, kept under target/) a folder of MNIST's first N training digits as 28x28 gray PNGs
in train/<label>/ (with --side S --rgb: S x S colour JPEGs, bilinear upscaled, for photo-like
costs; --resize R: both sides resize them to R x R, as a training set of photos is shrunk) (from ../shared/data/mnist; without it, the embedded 8x8 digits, scaled up to
28x28 and repeated with a one-pixel shift per copy). Then, per round, alternating the order:

  pil        torchvision-style over the folder: list it (sorted class folders, every file), then
             PIL open + convert("L") + resize to 28x28 (bilinear) + to a float tensor in [0, 1],
             through a DataLoader with 2 worker processes, batches of 256, every image once
  first      kd-tui's load with data.cache = "memory": list, read headers, decode, split, tensors
  write      the same with a fresh disk cache: decode and write the cache file
  cached     the same again with data.cache = "auto": the cache file read back into memory
             instead of decoding (the same tensors as "first")

kd-tui's figures are the seconds `kd-tui data` reports for `data::load` (its own process start,
the same for every variant, is not counted; neither is the DataLoader's import of torch). Every
file is in the page cache (the folder was just written or read), so this measures decoding, not
the disk. Prints medians over rounds (min-max) and the ratios; --json writes every figure.

    python3 scripts/bench_images.py [--images 10000] [--rounds 5] [--json F]
"""

import argparse
import gzip
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
MNIST = ROOT.parent / "shared" / "data" / "mnist"


def digits_source(n):
    """(images [n, 28, 28] uint8, labels [n]): MNIST's first n, else the embedded digits."""
    images = MNIST / "train-images-idx3-ubyte.gz"
    if images.exists():
        pixels = np.frombuffer(gzip.open(images).read()[16:], np.uint8).reshape(-1, 28, 28)
        labels = np.frombuffer(gzip.open(MNIST / "train-labels-idx1-ubyte.gz").read()[8:], np.uint8)
        if len(pixels) >= n:
            return pixels[:n], labels[:n], "mnist"
    rows = np.loadtxt(gzip.open(ROOT / "assets" / "digits.csv.gz"), delimiter=",")
    small = (rows[:, :64] * 255 / 16).astype(np.uint8).reshape(-1, 8, 8)
    big = np.stack([np.asarray(Image.fromarray(d).resize((28, 28), Image.BILINEAR)) for d in small])
    copies = -(-n // len(big))
    pixels = np.concatenate([np.roll(big, c % 3 - 1, axis=2) for c in range(copies)])[:n]
    labels = np.tile(rows[:, 64].astype(np.uint8), copies)[:n]
    return pixels, labels, "digits"


def build_folder(n, side, rgb):
    folder = ROOT / "target" / (f"bench-images-{n}" + (f"-{side}-rgb" if rgb else ""))
    marker = folder / "complete"
    if marker.exists():
        return folder, marker.read_text()
    shutil.rmtree(folder, ignore_errors=True)
    pixels, labels, origin = digits_source(n)
    for i, (image, label) in enumerate(zip(pixels, labels)):
        path = folder / "train" / str(label) / f"{i:05d}.{'jpg' if rgb else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image, "L")
        if rgb:
            picture = picture.resize((side, side), Image.BILINEAR).convert("RGB")
        picture.save(path)
    marker.write_text(origin)
    return folder, origin


class Folder(torch.utils.data.Dataset):
    """torchvision's ImageFolder, written out (torchvision is not a dependency here)."""

    def __init__(self, root, side, mode):
        self.side, self.mode = side, mode
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.samples = []
        for index, name in enumerate(classes):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, name), followlinks=True)):
                for f in sorted(files):
                    if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")):
                        self.samples.append((os.path.join(dirpath, f), index))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:
            image = Image.open(f).convert(self.mode).resize((self.side, self.side), Image.BILINEAR)
        pixels = torch.from_numpy(np.array(image, np.uint8, copy=True)).float().div(255)
        return (pixels.permute(2, 0, 1) if pixels.dim() == 3 else pixels.unsqueeze(0)), label


def pil_pass(folder, side, mode):
    start = time.perf_counter()
    dataset = Folder(folder / "train", side, mode)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=2)
    seen = sum(len(labels) for _, labels in loader)
    return time.perf_counter() - start, seen


def kd_tui_pass(binary, folder, cache_mode, cache_dir, resize):
    sets = ["data.source=\"images\"", f"data.path=\"{folder}\"", f"data.cache=\"{cache_mode}\""]
    if resize:
        sets.append(f"data.size=[{resize}, {resize}]")
    command = [binary, "data"] + [a for s in sets for a in ("--set", s)]
    env = dict(os.environ, KD_TUI_CACHE=str(cache_dir))
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kd-tui data failed ({out.returncode}):\n{out.stderr[-2000:]}")
    seconds = float(re.search(r"loaded in ([0-9.]+) s", out.stdout).group(1))
    examples = sum(int(n) for n in re.findall(r"(\d+) (?:train|validation|test)", out.stdout))
    cache = re.search(r"cache: ([a-z]+)", out.stdout).group(1)
    return seconds, examples, cache


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--side", type=int, default=28, help="with --rgb: the images' side")
    parser.add_argument("--rgb", action="store_true", help="colour JPEGs of --side pixels")
    parser.add_argument("--resize", type=int, help="resize to R x R (kd-tui: data.size)")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = str(ROOT / "target" / "release" / "kd-tui")
    side = args.side if args.rgb else 28
    folder, origin = build_folder(args.images, side, args.rgb)
    kind = f"{side}x{side} RGB JPEGs" if args.rgb else "28x28 gray PNGs"
    if args.resize:
        kind += f", resized to {args.resize}x{args.resize}"
    print(f"{args.images} {kind} ({origin}) in {folder}; {os.cpu_count()} CPUs", flush=True)
    times = {"pil": [], "first": [], "write": [], "cached": []}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            fresh = pathlib.Path(scratch) / f"cache-{r}"
            variants = {
                "pil": lambda: pil_pass(folder, args.resize or side, "RGB" if args.rgb else "L"),
                "first": lambda: kd_tui_pass(binary, folder, "memory", fresh, args.resize),
                "write": lambda: kd_tui_pass(binary, folder, "disk", fresh, args.resize),
                "cached": lambda: kd_tui_pass(binary, folder, "auto", fresh, args.resize),
            }
            order = ["pil", "first", "write", "cached"]
            if r % 2:  # the DataLoader last every other round
                order = order[1:] + order[:1]
            for name in order:
                seconds, count, *cache = variants[name]()
                expected = {"first": ["memory"], "write": ["written"], "cached": ["read"]}
                if cache != expected.get(name, []) or count != args.images:
                    sys.exit(f"{name}: {count} images, cache {cache}: not the work expected")
                times[name].append(seconds)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
                  flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedians over {args.rounds} rounds ({args.images} images):")
    for k, v in times.items():
        print(f"  {k:7} {med[k]:7.3f} s  ({min(v):.3f}-{max(v):.3f})  {args.images / med[k]:9.0f} images/s")
    ratios = {
        "first pass vs PIL DataLoader": med["pil"] / med["first"],
        "cached vs first pass": med["first"] / med["cached"],
        "cached vs PIL DataLoader": med["pil"] / med["cached"],
    }
    for k, v in ratios.items():
        print(f"  {k}: {v:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"images": args.images, "kind": kind, "origin": origin, "seconds": times,
                                         "medians": med, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
