#!/usr/bin/env python3
"""Every memory mode of the search step, ours and PyTorch's, side by side.

Runs each case of onnas_bench_search in its own process (so each peak RSS is that
case's own), and bench/compare_pytorch.py `search` with the same configuration and
mode in its own process, then prints a Markdown table: median step time, the ratio
(PyTorch / ours, > 1: ours faster), our planned peak (arena + SBS side + persistent)
against PyTorch's saved-for-backward bytes, and both processes' peak RSS.

  /usr/bin/python3 bench/search_modes.py --bench build/bench/onnas_bench_search \
      [--configs omniglot,fmnist] [--threads 2] [--steps 5]
PyTorch has no micro-batches here: the split-5 rows compare with its unsplit mode.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = {"fmnist": dict(C=16, classes=10, batch=32), "omniglot": dict(C=28, classes=5, batch=25)}
# our case -> (PyTorch mode, SBS variant)
MODES = [("full", "full", None), ("ops", "ops", None), ("ops+pairs", "ops+pairs", None),
         ("sbs-recompute", "ops+pairs+sbs", "recompute"), ("sbs-checkpoint", "ops+pairs+sbs", "checkpoint"),
         ("full-split5", "full", None), ("sbs-recompute-split5", "ops+pairs+sbs", "recompute")]


def mib(b):
    return f"{b / 2**20:.1f}"


def ours(bench, config, case, threads):
    env = dict(os.environ, ONNAS_BENCH_THREADS=str(threads))
    r = subprocess.run([bench, f"--benchmark_filter=^search_step/{config}/{case.replace('+', '.')}/",
                        "--benchmark_format=json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        runs = json.loads(r.stdout)["benchmarks"]
    except (json.JSONDecodeError, KeyError):
        return None  # no such case (e.g. split 5 of a batch of 32)
    return runs[0] if runs else None


def torch_side(config, mode, variant, threads, steps):
    c = CONFIGS[config]
    here = os.path.dirname(os.path.abspath(__file__))
    argv = ["/usr/bin/python3", os.path.join(here, "compare_pytorch.py"), "search", "--mode", mode,
            "--C", str(c["C"]), "--classes", str(c["classes"]), "--batch", str(c["batch"]),
            "--threads", str(threads), "--steps", str(steps), "--warmup", "1"]
    if variant:
        argv += ["--sbs-variant", variant]
    r = subprocess.run(argv, stdout=subprocess.PIPE)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/onnas_bench_search")
    ap.add_argument("--configs", default="omniglot,fmnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch_cache = {}
    for config in a.configs.split(","):
        c = CONFIGS[config]
        print(f"\n{config}: C={c['C']}, {c['classes']} classes, batch {c['batch']}, {a.threads} threads\n")
        print("| mode | ours ms | PyTorch ms | speed ratio | compile ms per step | our plan MiB (arena [handed] + "
              "persistent + tables) | fixed overhead MiB | our peak RSS MiB | RSS / (plan + overhead) "
              "| PyTorch saved MiB | PyTorch peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        full_total = None
        for case, mode, variant in MODES:
            o = ours(a.bench, config, case, a.threads)
            if o is None:
                continue
            key = (config, mode, variant)
            if key not in torch_cache:
                torch_cache[key] = torch_side(config, mode, variant, a.threads, a.steps)
            t = torch_cache[key]
            total = o["total_bytes"]
            full_total = full_total or total
            row = [case, f"{o['step_ms_median']:.0f}"]
            if t:
                row += [f"{t['step_ms_median']:.0f}", f"{t['step_ms_median'] / o['step_ms_median']:.2f}"]
            else:
                row += ["-", "-"]
            row += [f"{o['compile_ms']:.2f}"]
            row += [f"{mib(total)} ({mib(o['arena_bytes'])} [{mib(o['handed_bytes'])}] + {mib(o['persistent_bytes'])} + "
                    f"{mib(o['table_bytes'])}); {full_total / total:.1f}x below full"]
            row += [mib(o["overhead_bytes"]), mib(o["peak_rss_bytes"]), f"{o['rss_over_plan']:.2f}"]
            row += [mib(t["saved_bytes_peak"]) if t else "-", mib(t["peak_rss_bytes"]) if t else "-"]
            print("| " + " | ".join(row) + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
