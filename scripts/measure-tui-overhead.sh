#!/usr/bin/env bash
# Training throughput with the TUI vs --batch on the same preset, and CPU use while paused.
#   scripts/measure-tui-overhead.sh [repeats] [teacher epochs]
# Both modes write summary.json; the teacher phase's train_seconds is compared (median of runs,
# modes alternated so drift affects both). The TUI runs in a 160x48 tmux terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/libtorch-env.sh
cargo build --release --quiet
bin="$PWD/target/release/kd-tui"
repeats="${1:-5}"
epochs="${2:-150}"
work="$(mktemp -d)"
trap 'tmux kill-session -t kd-measure 2>/dev/null || true; rm -rf "$work"' EXIT
args=(presets/digits.toml --set "teacher.epochs=$epochs" --set student.baseline=false --set student.epochs=1)

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
wait_for() { for _ in $(seq 1 "$2"); do eval "$1" && return 0; sleep 0.1; done; echo "timed out: $1" >&2; return 1; }

tui_run() { # $1 = run dir; extra args after
  local dir="$1"; shift
  tmux new-session -d -s kd-measure -x 160 -y 48 "$bin --out $dir ${*}"
  wait_for "grep -q '\"type\":\"finished\"' $dir/metrics.jsonl 2>/dev/null" 3000
  tmux send-keys -t kd-measure q
  wait_for "! tmux has-session -t kd-measure 2>/dev/null" 100
}

batch_times=(); tui_times=()
for i in $(seq 1 "$repeats"); do
  "$bin" --batch --out "$work/batch-$i" "${args[@]}" >/dev/null 2>&1
  batch_times+=("$(json "$work/batch-$i/summary.json" "d['teacher']['train_seconds']")")
  tui_run "$work/tui-$i" "${args[@]}"
  tui_times+=("$(json "$work/tui-$i/summary.json" "d['teacher']['train_seconds']")")
done
steps=$(python3 -c "import json; print(max(json.loads(l)['step'] for l in open('$work/batch-1/metrics.jsonl') if '\"teacher\"' in l))")
python3 - "$steps" "${batch_times[*]}" "${tui_times[*]}" <<'PY'
import statistics, sys
steps = int(sys.argv[1])
batch = [float(x) for x in sys.argv[2].split()]
tui = [float(x) for x in sys.argv[3].split()]
mb, mt = statistics.median(batch), statistics.median(tui)
print(f"teacher phase, {steps} optimizer steps (plus an evaluation per epoch), {len(batch)} runs each")
print(f"  --batch: median {mb:.3f} s  ({steps / mb:.0f} steps/s)  runs: {' '.join(f'{x:.3f}' for x in batch)}")
print(f"  TUI    : median {mt:.3f} s  ({steps / mt:.0f} steps/s)  runs: {' '.join(f'{x:.3f}' for x in tui)}")
print(f"  TUI throughput relative to --batch: {100 * mb / mt:.1f}%")
PY

# CPU while paused: a teacher that trains for a long time, paused after its first epoch.
tmux new-session -d -s kd-measure -x 160 -y 48 "$bin --out $work/paused --set teacher.epochs=100000"
wait_for "grep -q '\"type\":\"epoch\"' $work/paused/metrics.jsonl 2>/dev/null" 600
tmux send-keys -t kd-measure Space
wait_for "grep -q '\"paused\":true' $work/paused/metrics.jsonl" 100
pid=$(pgrep -P "$(tmux display-message -p -t kd-measure '#{pane_pid}')" kd-tui || tmux display-message -p -t kd-measure '#{pane_pid}')
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks); sleep 5; t1=$(ticks)
hz=$(getconf CLK_TCK)
python3 -c "print(f'CPU while paused (TUI open, 5 s): {100 * ($t1 - $t0) / $hz / 5:.2f}% of one core')"
tmux send-keys -t kd-measure C-c
