"""A copy of torch-sys whose generated C++ bindings compile against another libtorch.

tch 0.26's torch-sys binds every operator of PyTorch 2.13; an older libtorch (e.g. 2.11, the one
on the lent GPU machine) lacks a few of them, so torch_api_generated.cpp does not compile. This
copies torch-sys to DEST, compiles torch_api_generated.cpp against the given Python's libtorch
headers (syntax only, seconds), and removes every generated `atg_*` function that fails, from the
.cpp and its declaration from the .h, until the file compiles. The Rust side (c_generated.rs, tch's
wrappers) keeps its declarations: nothing kd-tui calls uses them, and the linker drops unused code.

    python3 scripts/patch_torch_sys.py --src ~/.cargo/registry/src/*/torch-sys-0.26.0 \
        --dest DIR --python /path/to/venv/bin/python3

Prints the removed bindings; writes them to DEST/KD_TUI_PATCH. Does nothing when DEST already
holds a copy patched for the same source and libtorch (delete DEST to redo it).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

GENERATED = "libtch/torch_api_generated"
MAX_REMOVED = 60  # more than this means a different problem than a few missing operators
TORCH_INFO = r"""
import json, torch
from torch.utils import cpp_extension
print(json.dumps(dict(version=torch.__version__, abi=int(torch._C._GLIBCXX_USE_CXX11_ABI),
                      includes=cpp_extension.include_paths())))
"""
DEFINITION = re.compile(r"^[A-Za-z].*?\b(atg_\w+)\(")


def failing_lines(cpp, torch_info):
    """Line numbers (1-based) of compile errors in `cpp`, or [] when it compiles."""
    command = [os.environ.get("CXX", "c++"), "-fsyntax-only", "-std=c++17", "-w",
               "-fmax-errors=0", f"-D_GLIBCXX_USE_CXX11_ABI={torch_info['abi']}",
               "-DGLOG_USE_GLOG_EXPORT", *(f"-I{p}" for p in torch_info["includes"]), str(cpp)]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode == 0:
        return []
    pattern = re.compile(rf"^{re.escape(str(cpp))}:(\d+):\d+: error:", re.M)
    lines = sorted({int(m.group(1)) for m in pattern.finditer(out.stderr)})
    if not lines:
        sys.exit(f"patch_torch_sys: {cpp.name} does not compile, and not in a binding:\n"
                 f"{out.stderr[-3000:]}")
    return lines


def enclosing_functions(text, lines):
    """The generated functions (name, first line, last line) holding the given lines."""
    found, start, name = {}, None, None
    for number, line in enumerate(text.splitlines(), 1):
        m = DEFINITION.match(line)
        if m and line.rstrip().endswith("{"):
            start, name = number, m.group(1)
        elif line.startswith("}") and start is not None:
            if any(start <= n <= number for n in lines):
                found[name] = (start, number)
            start = name = None
    missed = [n for n in lines if not any(a <= n <= b for a, b in found.values())]
    if missed:
        sys.exit(f"patch_torch_sys: compile errors outside a generated function at lines {missed}")
    return found


def remove(dest, names):
    """Removes the functions `names` ({name: (first line, last line)}) from the generated .cpp
    and their declarations from the .h."""
    cpp, header = dest / f"{GENERATED}.cpp", dest / f"{GENERATED}.h"
    lines = cpp.read_text().splitlines(keepends=True)
    for start, end in sorted(names.values(), reverse=True):
        # The function and the blank line after it.
        if end < len(lines) and not lines[end].strip():
            end += 1
        del lines[start - 1 : end]
    cpp.write_text("".join(lines))
    declared = [line for line in header.read_text().splitlines(keepends=True)
                if not any(re.search(rf"\b{n}\(", line) for n in names)]
    header.write_text("".join(declared))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, type=pathlib.Path, help="torch-sys source folder")
    parser.add_argument("--dest", required=True, type=pathlib.Path)
    parser.add_argument("--python", default="python3", help="the Python whose torch to build for")
    args = parser.parse_args()
    info = json.loads(subprocess.run([args.python, "-c", TORCH_INFO], check=True,
                                     capture_output=True, text=True).stdout)
    stamp = f"source {args.src.resolve()}\ntorch {info['version']}\n"
    marker = args.dest / "KD_TUI_PATCH"
    if marker.exists() and marker.read_text().startswith(stamp):
        print(f"patch_torch_sys: {args.dest} is up to date:\n{marker.read_text()}", end="")
        return
    if not (args.src / f"{GENERATED}.cpp").exists():
        sys.exit(f"patch_torch_sys: {args.src} is not a torch-sys source folder")
    if args.dest.exists():
        shutil.rmtree(args.dest)
    shutil.copytree(args.src, args.dest)
    cpp = args.dest / f"{GENERATED}.cpp"
    removed = []
    while lines := failing_lines(cpp, info):
        found = enclosing_functions(cpp.read_text(), lines)
        removed += sorted(found)
        if len(removed) > MAX_REMOVED:
            sys.exit(f"patch_torch_sys: over {MAX_REMOVED} bindings fail; not patching: {removed}")
        remove(args.dest, found)
    marker.write_text(stamp + "removed " + " ".join(removed) + "\n")
    print(f"patch_torch_sys: {len(removed)} bindings removed for torch {info['version']}: "
          + " ".join(removed))


if __name__ == "__main__":
    main()
