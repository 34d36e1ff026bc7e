"""Trace-feature speed: every feature family of `weight_merging.traces` for every CNN of a zoo, timed per family.

The target (issue 19): the whole quick zoo in at most two minutes on two CPU cores. Each family is computed once for all
CNNs (torch families batched over the zoo; gudhi's diagrams one CNN at a time), after a small warm-up call.

    python benchmarks/traces_features.py                                  # runs/study/zoo, 1 torch thread
    python benchmarks/traces_features.py --zoo runs/zoo-quick --threads 2 --out nbs/results/traces/benchmark.json
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, torch
from weight_merging.zoo import load_zoo, atomic_write, run_provenance
from weight_merging.traces import TraceFeatures, FAMILIES

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--zoo', default='runs/study/zoo', help='zoo folder')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--out', default='nbs/results/traces/benchmark.json', help="JSON of the result ('' to only print)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    zoo = load_zoo(a.zoo); W = np.asarray(zoo.weights)
    TraceFeatures().fit_transform(W[:4])   # warm-up: imports and first calls
    per, total = {}, time.perf_counter()
    for f in FAMILIES:
        t = time.perf_counter(); X = TraceFeatures([f]).fit_transform(W)[f]; per[f] = round(time.perf_counter() - t, 2)
        print(f"{f:11s} {X.shape[1]:5d} features  {per[f]:7.2f} s")
    total = round(time.perf_counter() - total, 2)
    print(f"all families, {len(W)} CNNs of {a.zoo}, {a.threads} torch thread(s), {os.cpu_count()} CPU cores: {total} s "
          f"({'within' if total <= 120 else 'OVER'} the 2-minute target)")
    res = dict(command='python benchmarks/traces_features.py' + (f' --zoo {a.zoo}' if a.zoo != 'runs/study/zoo' else '')
               + (f' --threads {a.threads}' if a.threads != 1 else ''), zoo=a.zoo, cnns=len(W), threads=a.threads,
               per_family_s=per, seconds=total, target_s=120, **run_provenance())
    if a.out: atomic_write(a.out, lambda q: Path(q).write_text(json.dumps(res, indent=1)))

if __name__ == '__main__': main()
