# shellcheck shell=bash
# Sourced by scripts/kd and .ci/run: makes libtorch for tch 0.26 (PyTorch 2.13.0) available to cargo.
#
# Order of preference:
#   1. LIBTORCH set by the user: used as is.
#   2. A python3 on PATH whose torch is 2.13.x: built with LIBTORCH_USE_PYTORCH=1.
#   3. A per-user venv at $KD_TUI_CACHE (default ~/.cache/kd-tui/torch-2.13.0), created once with
#      `pip install torch==2.13.0`. KD_TUI_TORCH_INDEX_URL points pip at another index
#      (e.g. a CPU-only wheel index); KD_TUI_TORCH_SPEC overrides the requirement itself.
kd_torch_version="2.13"
kd_torch_spec="${KD_TUI_TORCH_SPEC:-torch==2.13.0}"
kd_cache="${KD_TUI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kd-tui}"
kd_venv="$kd_cache/torch-2.13.0"

kd_torch_of() { "$1" -c 'import torch, sys; sys.stdout.write(torch.__version__)' 2>/dev/null; }

if [ -n "${LIBTORCH:-}" ]; then
  echo "kd-tui: using LIBTORCH=$LIBTORCH" >&2
  unset LIBTORCH_USE_PYTORCH
elif command -v python3 >/dev/null && [[ "$(kd_torch_of python3)" == "$kd_torch_version".* ]]; then
  echo "kd-tui: using the PyTorch $(kd_torch_of python3) of $(command -v python3)" >&2
  export LIBTORCH_USE_PYTORCH=1
else
  if [[ "$(kd_torch_of "$kd_venv/bin/python3")" != "$kd_torch_version".* ]]; then
    echo "kd-tui: installing $kd_torch_spec into $kd_venv (once; about 4.7 GB)" >&2
    mkdir -p "$kd_cache"
    python3 -m venv "$kd_venv" || return 1 2>/dev/null || exit 1
    kd_pip_args=(--disable-pip-version-check -q)
    [ -n "${KD_TUI_TORCH_INDEX_URL:-}" ] && kd_pip_args+=(--index-url "$KD_TUI_TORCH_INDEX_URL")
    "$kd_venv/bin/python3" -m pip install "${kd_pip_args[@]}" "$kd_torch_spec" numpy \
      || { echo "kd-tui: pip install $kd_torch_spec failed" >&2; return 1 2>/dev/null || exit 1; }
  fi
  # The CUDA headers the NCCL backend's shim compiles against (csrc/nccl.cpp): a CUDA wheel
  # ships nccl.h and the runtime's headers but not cccl's and crt's. Small, header-only.
  kd_cuda="$("$kd_venv/bin/python3" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null)"
  kd_nvidia="$("$kd_venv/bin/python3" -c 'import os, torch; print(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia"))' 2>/dev/null)"
  if [ -n "$kd_cuda" ] && [ -d "$kd_nvidia/nccl" ] && ! compgen -G "$kd_nvidia/*/include/nv/target" >/dev/null; then
    echo "kd-tui: adding CUDA $kd_cuda's cccl and crt headers to $kd_venv (for the NCCL backend)" >&2
    "$kd_venv/bin/python3" -m pip install --disable-pip-version-check -q \
      "nvidia-cuda-cccl==$kd_cuda.*" "nvidia-cuda-crt==$kd_cuda.*" \
      || echo "kd-tui: could not add them; kd-tui builds without the NCCL backend" >&2
  fi
  export PATH="$kd_venv/bin:$PATH"
  export LIBTORCH_USE_PYTORCH=1
fi
# tch checks the PyTorch version against its own; keep the check (a mismatch is a real bug).
