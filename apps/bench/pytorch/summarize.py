#!/usr/bin/env python3
"""Turns raw.jsonl (run_all.sh) into results.json and prints the markdown tables of README.md.

  /usr/bin/python3 summarize.py [raw.jsonl] [results.json]

Each step row's time is the median over every timed step of every round (rounds x reps steps);
the per-round medians are kept next to it. Ratios are fwdgrad ms / PyTorch ms for the same
model, batch and algorithm."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys


def sh(cmd: str) -> str | None:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine(raw_machine: dict | None) -> dict:
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    flags = re.search(r"flags\s*:\s*(.*)", cpu)
    fl = set(flags.group(1).split()) if flags else set()
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    here = os.path.dirname(os.path.abspath(__file__))
    tfjs = sh(f"cd {here} && node -p \"require('@tensorflow/tfjs/package.json').version\"")
    wasm = sh(
        f"cd {here}/../../../packages/trainer && node -p \"require('@tensorflow/tfjs-backend-wasm/package.json').version\""
    )
    return {
        "nproc": int(sh("nproc") or 0),
        "cpu_model": model.group(1).strip() if model else None,
        "cpu_flags": sorted(f for f in fl if f in {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx_vnni"}),
        "mem_total_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
        "node": sh("node --version"),
        "tfjs": tfjs,
        "tfjs_backend_wasm": wasm,
        "wasm_threads": "1 (tfjs-backend-wasm disables its threaded build under Node: WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE)",
        "python3_torch_deb": sh("dpkg-query -W -f='${Version}' python3-torch"),
        "openblas_deb": sh("dpkg-query -W -f='${Version}' libopenblas0-pthread"),
        "OPENBLAS_CORETYPE_env": os.environ.get("OPENBLAS_CORETYPE"),
        **({f"torch_{k}": v for k, v in raw_machine.items() if k not in ("kind", "framework", "round")} if raw_machine else {}),
    }


def variant(r: dict) -> str:
    if r["framework"] == "fwdgrad":
        backend = r.get("fwdgrad_backend") or r.get("backend", "wasm")
        threads = r.get("threads", 1)
        return f"fwdgrad ({backend}, {threads} thread{'s' if threads > 1 else ''})"
    v = f"PyTorch {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
    if r.get("omp_wait_policy", "default") != "default":
        v += f", OMP_WAIT_POLICY={r['omp_wait_policy']}"
    return v


def main():
    raw_path = sys.argv[1] if len(sys.argv) > 1 else "raw.jsonl"
    out_path = sys.argv[2] if len(sys.argv) > 2 else "results.json"
    rows = [json.loads(line) for line in open(raw_path) if line.strip()]
    steps = [r for r in rows if r.get("kind") == "step"]
    mats = [r for r in rows if r.get("kind") == "matmul"]
    profiles = [r for r in rows if r.get("kind") == "profile"]
    uptimes = [r for r in rows if r.get("kind") == "uptime"]
    raw_machine = next((r for r in rows if r.get("kind") == "machine"), None)

    groups: dict[tuple, list[dict]] = {}
    for r in steps:
        groups.setdefault((variant(r), r["code"], r["batch"], r["algo"]), []).append(r)
    summary = []
    for (var, code, batch, algo), rs in groups.items():
        times = [t for r in rs for t in (r.get("ms_all") or [])]
        errors = sorted({r["error"] for r in rs if r.get("error")})
        row = {
            "variant": var,
            "framework": rs[0]["framework"],
            "code": code,
            "batch": batch,
            "algo": algo,
            "steps_timed": len(times),
            "rounds": len(rs),
            "ms_median": statistics.median(times) if times else None,
            "ms_round_medians": [r.get("ms_median") for r in rs],
            "ms_grads_round_medians": [r.get("ms_grads_median") for r in rs],
            "examples_per_s": batch / statistics.median(times) * 1e3 if times else None,
            "load_before": [r.get("load_before") for r in rs],
            "error": "; ".join(errors) or None,
            "wasm_heap_bytes": [r.get("wasm_heap_bytes") for r in rs] if rs[0]["framework"] == "fwdgrad" else None,
        }
        summary.append(row)
    # fwdgrad / PyTorch compares the same thread count: fwdgrad native with N threads against PyTorch
    # with N threads (the wasm rows, single-threaded, against PyTorch 1 thread)
    def threads_of(v: str) -> int:
        m = re.search(r"(\d+) thread", v)
        return int(m.group(1)) if m else 1

    ref = {
        (r["code"], r["batch"], r["algo"], threads_of(r["variant"])): r["ms_median"]
        for r in summary
        if r["framework"] == "fwdgrad" and "native" in r["variant"]
    }
    for r in summary:
        f = ref.get((r["code"], r["batch"], r["algo"], threads_of(r["variant"])))
        r["ratio_fwdgrad_over_this"] = f / r["ms_median"] if f and r["ms_median"] and r["framework"] == "pytorch" else None
    order = {"M/1/16": 0, "M/8/16": 1}
    summary.sort(key=lambda r: (order.get(r["code"], 9), -r["batch"], r["algo"] != "lg-fg-a", r["framework"] != "fwdgrad", r["variant"]))

    mat_groups: dict[str, list[dict]] = {}
    for m in mats:
        mat_groups.setdefault(variant({**m, "code": "", "batch": 0, "algo": ""}), []).append(m)
    matmul = [
        {
            "variant": v,
            "shape": ms[0]["shape"],
            "ms_round_medians": [m["ms_median"] for m in ms],
            "gflops_round_medians": [m["gflops"] for m in ms],
            "gflops_median": statistics.median(m["gflops"] for m in ms),
        }
        for v, ms in mat_groups.items()
    ]
    result = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": "one LocalMixer training step (gradients + SGD-momentum update), random data, batch B; "
        "ms_median = median over all timed steps of all rounds (warm-up and timed steps per round: "
        "M/1/16 B128 30 + 30, M/8/16 B128 2 + 5, M/8/16 B32 3 + 8)",
        "machine": machine(raw_machine),
        "uptime": uptimes,
        "matmul_4096x512x512": matmul,
        "summary": summary,
        "profiles": profiles,
        "raw_steps": steps,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)

    # the headline: per case, fwdgrad native vs PyTorch at the same thread count, and vs wasm
    by = {(r["variant"], r["code"], r["batch"], r["algo"]): r for r in summary}
    cases = sorted({(r["code"], r["batch"], r["algo"]) for r in summary}, key=lambda c: (order.get(c[0], 9), -c[1], c[2] != "lg-fg-a"))

    def cell(v, c):
        r = by.get((v,) + c)
        return (f"{r['ms_median']:.1f}" if r["ms_median"] < 100 else f"{r['ms_median']:.0f}") if r and r["ms_median"] else "—"

    def ratio(a, b, c):
        ra, rb = by.get((a,) + c), by.get((b,) + c)
        if not (ra and rb and ra["ms_median"] and rb["ms_median"]):
            return "—"
        per_round = [x / y for x, y in zip(ra["ms_round_medians"], rb["ms_round_medians"]) if x and y]
        spread = f" ({min(per_round):.2f}–{max(per_round):.2f})" if len(per_round) > 1 else ""
        return f"**{ra['ms_median'] / rb['ms_median']:.2f}×**{spread}"

    print("| model | batch | algo | wasm, 1 thr | native, 1 thr | PyTorch, 1 thr | native / PyTorch, 1 thr | native, 2 thr | PyTorch, 2 thr | native / PyTorch, 2 thr | wasm / native, 1 thr |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    W, N1, N2, T1, T2 = "fwdgrad (wasm, 1 thread)", "fwdgrad (native, 1 thread)", "fwdgrad (native, 2 threads)", "PyTorch 1 thread", "PyTorch 2 threads, OMP_WAIT_POLICY=PASSIVE"
    for c in cases:
        print(f"| {c[0]} | {c[1]} | {c[2]} | {cell(W, c)} | {cell(N1, c)} | {cell(T1, c)} | {ratio(N1, T1, c)} | {cell(N2, c)} | {cell(T2, c)} | {ratio(N2, T2, c)} | {ratio(W, N1, c)} |")
    print()
    print("| framework | model | batch | algo | ms/step (median) | per-round medians | examples/s | fwdgrad native / this |")
    print("|---|---|---|---|---|---|---|---|")
    for r in summary:
        ms = f"{r['ms_median']:.0f}" if r["ms_median"] else f"— ({r['error']})"
        rounds = " / ".join(f"{m:.0f}" if m else "—" for m in r["ms_round_medians"])
        eps = f"{r['examples_per_s']:.0f}" if r["examples_per_s"] else "—"
        ratio = f"{r['ratio_fwdgrad_over_this']:.2f}×" if r["ratio_fwdgrad_over_this"] else ""
        print(f"| {r['variant']} | {r['code']} | {r['batch']} | {r['algo']} | {ms} | {rounds} | {eps} | {ratio} |")
    print()
    print("| matmul 4096×512×512 float32 | GFLOP/s (median of rounds) | per round |")
    print("|---|---|---|")
    for m in matmul:
        print(f"| {m['variant']} | {m['gflops_median']:.1f} | {' / '.join(f'{g:.1f}' for g in m['gflops_round_medians'])} |")
    print()
    for u in uptimes:
        print(f"round {u['round']} ({u['order']}) {u['when']}: {u['uptime'].strip()}")
    for p in profiles:
        tot = sum(k["ms"] for k in p["kernels"])
        top = ", ".join(f"{k['name']} {k['ms']:.0f}" for k in p["kernels"][:6])
        print(f"profile {variant(p)} {p['code']} B={p['batch']} {p['algo']}: step {p['total_ms']:.0f} ms, ops {tot:.0f} ms: {top}")


if __name__ == "__main__":
    main()
