#!/usr/bin/env bash
# Runs the fwdgrad (tfjs wasm) and PyTorch (CPU) step timings back to back and appends one JSON
# line per measurement to $OUT (default raw.jsonl). Usage: ./run_all.sh [ROUND] [ORDER]
#   ROUND  label stored with every line (default 1)
#   ORDER  fwdgrad-first (default) or pytorch-first
# Needs: built @fwdgrad/* packages (pnpm exec turbo run build --filter=@fwdgrad/bench^...),
# Debian's python3-torch at /usr/bin/python3. Takes about 5 minutes on 2 cores.
# ./run_all.sh profile: per-kernel (tfjs) / per-op (torch.profiler) breakdown of one M/8/16 batch-32 step.
set -euo pipefail
cd "$(dirname "$0")"
ROUND="${1:-1}"
ORDER="${2:-fwdgrad-first}"
OUT="${OUT:-raw.jsonl}"
PY=/usr/bin/python3
REPS="${REPS:-5}"
WARMUP="${WARMUP:-2}"
CASES=("M/1/16 128" "M/8/16 128" "M/8/16 32")

tag() { # adds the round to each JSON line of stdin
  "$PY" -c 'import json,sys
for l in sys.stdin:
    l=l.strip()
    if l.startswith("{"):
        d=json.loads(l); d["round"]=sys.argv[1]; print(json.dumps(d))' "$ROUND"
}

fwdgrad() {
  node fwdgrad_step.mjs matmul wasm 2>/dev/null | "$PY" -c 'import json,sys
for l in sys.stdin: d=json.loads(l); d["kind"]="matmul"; print(json.dumps(d))' | tag >>"$OUT"
  for c in "${CASES[@]}"; do
    set -- $c
    for algo in lg-fg-a lg-bp; do
      # one process per case: the wasm heap never shrinks, and an out-of-memory case must not
      # take the others with it
      node fwdgrad_step.mjs time "$1" "$2" "$algo" "$REPS" "$WARMUP" wasm 2>/dev/null |
        "$PY" -c 'import json,sys
for l in sys.stdin: d=json.loads(l); d["kind"]="step"; print(json.dumps(d))' | tag >>"$OUT" ||
        echo "{\"framework\":\"fwdgrad\",\"kind\":\"step\",\"code\":\"$1\",\"batch\":$2,\"algo\":\"$algo\",\"error\":\"process failed\",\"round\":\"$ROUND\"}" >>"$OUT"
    done
  done
}

pytorch() {
  local bench="M/1/16:128,M/8/16:128,M/8/16:32"
  local tmp
  tmp=$(mktemp)
  # (a) as asked: torch.set_num_threads(2), default OpenMP wait policy
  "$PY" localmixer_step.py --matmul --bench "$bench" --threads 2 --reps "$REPS" --warmup "$WARMUP" --json "$tmp"
  # (b) 2 threads with OMP_WAIT_POLICY=PASSIVE (threads sleep instead of spinning; matters on a shared machine)
  OMP_WAIT_POLICY=PASSIVE "$PY" localmixer_step.py --matmul --bench "$bench" --threads 2 --reps "$REPS" --warmup "$WARMUP" --json "$tmp"
  # (c) 1 thread, like the wasm backend (single-threaded under Node)
  "$PY" localmixer_step.py --matmul --bench "$bench" --threads 1 --reps "$REPS" --warmup "$WARMUP" --json "$tmp"
  tag <"$tmp" >>"$OUT"
  rm -f "$tmp"
}

profile() { # time per tfjs kernel / per aten op over one M/8/16 batch-32 step
  for algo in lg-fg-a lg-bp; do
    node fwdgrad_step.mjs profile M/8/16 32 "$algo" wasm 2>/dev/null | "$PY" -c 'import json,sys
for l in sys.stdin: d=json.loads(l); d["kind"]="profile"; print(json.dumps(d))' | tag >>"$OUT"
  done
  local tmp
  tmp=$(mktemp)
  "$PY" localmixer_step.py --profile M/8/16:32 --threads 1 --json "$tmp"
  tag <"$tmp" >>"$OUT"
  rm -f "$tmp"
}

if [ "$ROUND" = profile ]; then
  profile
  exit 0
fi
echo "{\"kind\":\"uptime\",\"when\":\"start\",\"uptime\":\"$(uptime)\",\"order\":\"$ORDER\",\"round\":\"$ROUND\"}" >>"$OUT"
if [ "$ORDER" = pytorch-first ]; then pytorch; fwdgrad; else fwdgrad; pytorch; fi
echo "{\"kind\":\"uptime\",\"when\":\"end\",\"uptime\":\"$(uptime)\",\"order\":\"$ORDER\",\"round\":\"$ROUND\"}" >>"$OUT"
