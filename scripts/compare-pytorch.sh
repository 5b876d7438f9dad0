#!/usr/bin/env bash
# Times benches/train_step.rs's training steps in plain PyTorch (the same libtorch kd-tui links)
# and prints them next to kd-tui's criterion figures, with the ratio PyTorch / kd-tui.
# Run `cargo bench --bench train_step` first; `scripts/kd bench` runs both.
#   scripts/compare-pytorch.sh [--threads N] [--warm-up S] [--measure S]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/libtorch-env.sh
source scripts/libtorch-env.sh
exec python3 scripts/compare_pytorch.py --criterion-dir "${CARGO_TARGET_DIR:-target}/criterion" "$@"
