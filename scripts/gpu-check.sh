#!/usr/bin/env bash
# kd-tui on a real GPU (issue 12): build a binary for a GPU box here, then run the check there.
#
#   scripts/gpu-check.sh stage [--torch VERSION] [--rev REV] [--mnist DIR] [--out DIR]
#       Here (network to PyPI/crates.io, no GPU needed). Builds kd-tui against PyTorch VERSION
#       (default 2.11.0, what the lent GPU machine has) and stages it in gpu-stage/ (git-ignored,
#       under 64 MiB): the stripped binary, the presets, the MNIST files and
#       scripts/pytorch_preset.py. Steps, each done once and reused:
#         - a venv with torch==VERSION (the default PyPI wheel: a CUDA build) at
#           ${KD_TUI_CACHE:-~/.cache/kd-tui}/torch-VERSION;
#         - a copy of torch-sys with the generated bindings VERSION's libtorch lacks removed
#           (scripts/patch_torch_sys.py, same cache);
#         - a release build from a copy of the working tree, or of commit REV with --rev (the
#           [patch] would rewrite Cargo.lock), with CARGO_TARGET_DIR=target/gpu-MAJOR.MINOR and
#           LIBTORCH_BYPASS_VERSION_CHECK=1.
#       pyte and wcwidth wheels go to gpu-stage/py (the cockpit check's terminal emulator).
#       MNIST comes from --mnist DIR (default ../shared/data/mnist); KD_TUI_TORCH_INDEX_URL
#       points pip at another index.
#       The binary's rpath names this machine's venv: on the GPU box `run` sets LD_LIBRARY_PATH.
#
#   scripts/gpu-check.sh run [--python PY] [--bin B] [--mnist DIR] [--cpu-only] [...]
#       On a GPU box, from the repo root (with gpu-stage/ copied along, or --bin pointing at any
#       kd-tui build, e.g. target/release/kd-tui). Sets LD_LIBRARY_PATH to PY's (default python3)
#       torch/lib and its site-packages' nvidia/*/lib, then runs `kd-tui doctor`, the digits and
#       MNIST presets with kd-tui and with plain PyTorch (scripts/pytorch_preset.py) on cuda and
#       then on cpu, a user's image folder and TorchScript models on each (scripts/
#       gpu_own_model.py), and prints per-phase samples/s and test accuracies. Every step runs even
#       when one fails; the exit status is 1 if any failed. `run --help` lists the options
#       (scripts/gpu_check.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { echo "gpu-check: $*" >&2; exit 1; }
elapsed() { echo "$(($(date +%s) - started))"; }
step() { echo "gpu-check [$(elapsed) s] $*" >&2; }
started=$(date +%s)

stage() {
  local torch_version="2.11.0" mnist="$root/../shared/data/mnist" stage_dir="$root/gpu-stage" rev=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --torch) torch_version="$2"; shift 2 ;;
      --rev) rev="$(git rev-parse --verify "$2^{commit}")" || die "no commit $2"; shift 2 ;;
      --mnist) mnist="$2"; shift 2 ;;
      --out) stage_dir="$2"; shift 2 ;;
      *) die "stage: unknown option $1 (--torch VERSION, --rev REV, --mnist DIR, --out DIR)" ;;
    esac
  done
  local cache="${KD_TUI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kd-tui}"
  local venv="$cache/torch-$torch_version"
  local target="$root/target/gpu-${torch_version%.*}"
  [ -d "$mnist" ] || die "no MNIST folder at $mnist (--mnist DIR)"

  # 1. PyTorch, once.
  local have
  have="$("$venv/bin/python3" -c 'import torch, sys; sys.stdout.write(torch.__version__)' 2>/dev/null || true)"
  if [[ "$have" != "$torch_version"* ]]; then
    step "installing torch==$torch_version into $venv (once; about 4.7 GB)"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    local pip_args=(--disable-pip-version-check -q)
    [ -n "${KD_TUI_TORCH_INDEX_URL:-}" ] && pip_args+=(--index-url "$KD_TUI_TORCH_INDEX_URL")
    "$venv/bin/python3" -m pip install "${pip_args[@]}" "torch==$torch_version" numpy
    have="$("$venv/bin/python3" -c 'import torch, sys; sys.stdout.write(torch.__version__)')"
  fi
  # The headers the NCCL backend's shim needs beside the wheel's own (scripts/libtorch-env.sh
  # adds the same to the 2.13 venv); without them the binary has no NCCL backend.
  local cuda
  cuda="$("$venv/bin/python3" -c 'import torch; print(torch.version.cuda or "")')"
  if [ -n "$cuda" ] && ! compgen -G "$venv/lib/python3*/site-packages/nvidia/*/include/nv/target" >/dev/null; then
    step "adding CUDA $cuda's cccl and crt headers to $venv"
    "$venv/bin/python3" -m pip install --disable-pip-version-check -q \
      "nvidia-cuda-cccl==$cuda.*" "nvidia-cuda-crt==$cuda.*"
  fi
  step "PyTorch $have in $venv"
  local torch_lib
  torch_lib="$("$venv/bin/python3" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

  # 2. A copy of kd-tui's sources: cargo's [patch] rewrites Cargo.lock, which must stay as it is.
  local tree="$target/tree"
  rm -rf "$tree"
  mkdir -p "$tree"
  if [ -n "$rev" ]; then
    step "copying commit $rev to $tree"
    git archive "$rev" | tar -C "$tree" -xf -
  else
    step "copying the working tree to $tree"
    # With their folders, so that folder mtimes (build.rs's rerun-if-changed=csrc) are kept too
    # and an unchanged tree rebuilds nothing.
    git ls-files -z -co --exclude-standard \
      | while IFS= read -r -d '' f; do
          [ -e "$f" ] || continue
          printf '%s\0' "$f"
          while [[ "$f" == */* ]]; do f="${f%/*}"; printf '%s\0' "$f"; done
        done \
      | sort -zu | tar --null --no-recursion -T - -cf - | tar -C "$tree" -xf -
  fi
  # Kept mtimes can be older than the last build although the content is newer (a file edited
  # while that build ran, from an older copy): files whose content changed since the last copy
  # are touched, so that cargo sees them.
  local sums="$target/tree.sha256"
  (cd "$tree" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$sums.new"
  if [ -f "$sums" ]; then
    LC_ALL=C comm -13 "$sums" "$sums.new" | cut -c67- | (cd "$tree" && xargs -r -d '\n' touch)
  fi
  mv "$sums.new" "$sums"

  # 3. torch-sys without the bindings this libtorch lacks.
  local sys_version sys_src patched
  sys_version="$(awk '/^name = "torch-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$tree/Cargo.lock")"
  [ -n "$sys_version" ] || die "no torch-sys in Cargo.lock"
  sys_src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "torch-sys-$sys_version" 2>/dev/null | head -n 1)"
  if [ -z "$sys_src" ]; then
    step "fetching crates (torch-sys $sys_version is not in cargo's registry yet)"
    (cd "$tree" && cargo fetch)
    sys_src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "torch-sys-$sys_version" | head -n 1)"
    [ -n "$sys_src" ] || die "torch-sys $sys_version not found under ${CARGO_HOME:-$HOME/.cargo}/registry/src"
  fi
  patched="$cache/torch-sys-$sys_version-for-torch-$torch_version"
  step "patching $sys_src -> $patched"
  python3 scripts/patch_torch_sys.py --src "$sys_src" --dest "$patched" --python "$venv/bin/python3"

  # 4. The build, against that venv's libtorch (torch-sys asks `python` when VIRTUAL_ENV is set).
  step "building kd-tui (release) in $target"
  (
    cd "$tree"
    unset LIBTORCH LIBTORCH_INCLUDE LIBTORCH_LIB LIBTORCH_STATIC LIBTORCH_CXX11_ABI
    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 \
      LIBTORCH_BYPASS_VERSION_CHECK=1 CARGO_TARGET_DIR="$target"
    cargo build --release --bin kd-tui --config "patch.crates-io.torch-sys.path=\"$patched\""
  )
  local built="$target/release/kd-tui"

  # 5. The stage.
  step "staging into $stage_dir"
  rm -rf "$stage_dir"
  mkdir -p "$stage_dir/presets" "$stage_dir/mnist"
  strip -o "$stage_dir/kd-tui" "$built"
  cp presets/*.toml "$stage_dir/presets/"
  cp "$mnist"/*-idx?-ubyte* "$stage_dir/mnist/"
  cp scripts/pytorch_preset.py "$stage_dir/"
  # A terminal emulator for the cockpit check (pure Python wheels; the GPU box has no network).
  "$venv/bin/python3" -m pip download --disable-pip-version-check -q --no-deps \
    -d "$stage_dir/py" pyte wcwidth
  local ldd_torch cuda_linked="no: kd-tui loads it at start-up from beside libtorch_cpu.so (kd-tui doctor)"
  ldd_torch="$(ldd "$stage_dir/kd-tui" | awk '$1 ~ /torch|c10|cuda|cupti|gomp/ || /not found/ { $1 = $1; print "  " $0 }')"
  grep -q 'libtorch_cuda\.so' <<<"$ldd_torch" && cuda_linked=yes
  {
    echo "kd-tui ${rev:-$(git describe --always --dirty 2>/dev/null || echo '?') (working tree)}, built $(date -u +%FT%TZ) on $(uname -n)"
    echo "against PyTorch $have ($torch_lib), torch-sys $sys_version patched:"
    sed -n 's/^removed /  removed bindings: /p' "$patched/KD_TUI_PATCH"
    echo "libtorch_cuda.so linked: $cuda_linked"
    echo "ldd (here):"
    echo "$ldd_torch"
    echo "glibc / libstdc++ needed: $(objdump -T "$stage_dir/kd-tui" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -n 1)," \
      "$(objdump -T "$stage_dir/kd-tui" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -n 1)"
  } >"$stage_dir/BUILD-INFO"
  cat "$stage_dir/BUILD-INFO"
  local bytes
  bytes="$(du -sb "$stage_dir" | cut -f1)"
  step "staged: $(du -h "$stage_dir/kd-tui" | cut -f1) binary, $stage_dir $((bytes / 1024 / 1024)) MiB ($bytes bytes) in all"
  [ "$bytes" -le $((64 * 1024 * 1024)) ] || die "$stage_dir is over 64 MiB"
}

case "${1:-}" in
  stage) shift; stage "$@" ;;
  run)
    shift
    python="python3"
    args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --python) python="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
      esac
    done
    command -v "$python" >/dev/null || die "no $python (--python PY: a Python with torch)"
    exec "$python" scripts/gpu_check.py "${args[@]}"
    ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
