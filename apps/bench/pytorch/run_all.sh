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
# CODE BATCH WARMUP REPS: small steps need more warm-up (V8 compiles the hot JavaScript paths after a
# few hundred kernel calls; at 2 warm-up steps an M/1/16 step measured 9 ms, after 30 it is 6.7 ms)
CASES=("M/1/16 128 30 30" "M/8/16 128 2 5" "M/8/16 32 3 8")
# fwdgrad configurations, BACKEND:THREADS (native: FWDGRAD_THREADS; wasm is single-threaded in Node)
FWDGRAD_CONFIGS="${FWDGRAD_CONFIGS:-wasm:1 native:1 native:2}"

tag() { # adds the round to each JSON line of stdin
  "$PY" -c 'import json,sys
for l in sys.stdin:
    l=l.strip()
    if l.startswith("{"):
        d=json.loads(l); d["round"]=sys.argv[1]; print(json.dumps(d))' "$ROUND"
}

kind() { # sets "kind" on each JSON line of stdin
  "$PY" -c 'import json,sys
for l in sys.stdin: d=json.loads(l); d["kind"]=sys.argv[1]; print(json.dumps(d))' "$1"
}

fwdgrad() {
  for cfg in $FWDGRAD_CONFIGS; do
    local backend=${cfg%%:*} threads=${cfg##*:}
    FWDGRAD_THREADS=$threads node fwdgrad_step.mjs matmul "$backend" 2>/dev/null | kind matmul | tag >>"$OUT"
    for c in "${CASES[@]}"; do
      set -- $c
      for algo in lg-fg-a lg-bp; do
        # one process per case: the wasm heap never shrinks, and an out-of-memory case must not
        # take the others with it
        FWDGRAD_THREADS=$threads node fwdgrad_step.mjs time "$1" "$2" "$algo" "$4" "$3" "$backend" 2>/dev/null |
          kind step | tag >>"$OUT" ||
          echo "{\"framework\":\"fwdgrad\",\"backend\":\"$backend\",\"fwdgrad_backend\":\"$backend\",\"threads\":$threads,\"kind\":\"step\",\"code\":\"$1\",\"batch\":$2,\"algo\":\"$algo\",\"error\":\"process failed\",\"round\":\"$ROUND\"}" >>"$OUT"
      done
    done
  done
}

pytorch() {
  local tmp
  tmp=$(mktemp)
  local first=1
  for c in "${CASES[@]}"; do
    set -- $c
    local mm=()
    if [ $first = 1 ]; then mm=(--matmul); first=0; fi
    # 2 threads with OMP_WAIT_POLICY=PASSIVE (threads sleep instead of spinning; without it the 2-thread
    # runs swung 4-25x on this shared machine, see the first results), and 1 thread
    OMP_WAIT_POLICY=PASSIVE "$PY" localmixer_step.py "${mm[@]}" --bench "$1:$2" --threads 2 --reps "$4" --warmup "$3" --json "$tmp"
    "$PY" localmixer_step.py "${mm[@]}" --bench "$1:$2" --threads 1 --reps "$4" --warmup "$3" --json "$tmp"
  done
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
