"""Forward + backward time of each loss in `weight_merging.losses` on a batch of zoo CNN weight vectors, on the CPU.

Builds a tiny zoo (or loads one with --zoo), times every loss of `LOSSES` with its default settings and, for the
losses that have one, a cheaper setting, and writes benchmarks/results/loss_speed.csv and loss_speed.md.

    python benchmarks/loss_speed.py                  # defaults: batch 32, 1 thread, median of 3 runs
    python benchmarks/loss_speed.py --zoo DIR --threads 2
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from weight_merging.zoo import N_PARAMS, ZOO_PRESETS, load_zoo
from weight_merging.build import build_zoo
from weight_merging.losses import LOSSES, LossContext, get_loss, layer_std, probe_batch
from weight_merging.loss_study import CHEAP_PARAMS

# Why a loss is slow, and the cheaper setting offered (also timed).
CHEAPER = {k: (why, CHEAP_PARAMS[k]) for k, why in {
    'jacobian_frobenius': "10 vector-Jacobian products per CNN and probe image, then a double backward through them",
    'sinkhorn': "tens of log-sum-exp passes of geomloss over B x n x n cost matrices (fine ε-scaling)",
    'gromov_wasserstein': "O(n^3) per proximal step of POT's batched solver, 10 steps x 20 Sinkhorn iterations, from 2 starts",
    'bottleneck': "gudhi's bottleneck matching of two ~800-point diagrams per sample",
    'multipersistence_l2': "gudhi persistence of 2 x 3 smoothed signals per sample, landscapes on ~800 points",
}.items()}  # the cheaper settings are the loss study's (weight_merging.loss_study.CHEAP_PARAMS)
FULL = {'sinkhorn': dict(n_quantiles=None)}  # the most faithful (and slowest) settings, timed once


class StandInMerger(nn.Module):
    "Stand-in with the merger's interface (encode, fuse) for timing `latent`: linear encoders, tanh neck."
    def __init__(self, d=64, neck=32):
        super().__init__()
        self.enc, self.neck = nn.ModuleList([nn.Linear(N_PARAMS, d), nn.Linear(N_PARAMS, d)]), nn.Linear(2 * d, neck)
    def encode(self, w, which=0): return torch.tanh(self.enc[which](w))
    def fuse(self, z1, z2): return torch.tanh(self.neck(torch.cat([z1, z2], -1)))


def time_loss(f, pred, target, ctx, repeats, warmup=True):
    "Median and min seconds of forward + backward (after one warm-up call if `warmup`)."
    def once():
        p = pred.clone().requires_grad_()
        t0 = time.perf_counter()
        f(p, target, ctx).sum().backward()
        return time.perf_counter() - t0
    if warmup: once()
    ts = [once() for _ in range(repeats)]
    return statistics.median(ts), min(ts)


def markdown_table(df: pd.DataFrame) -> str:
    "A GitHub-style markdown table of `df` (no extra dependency)."
    cells = [[str(c) for c in df.columns]] + [[str(v) for v in r] for r in df.itertuples(index=False)]
    lines = ['| ' + ' | '.join(r) + ' |' for r in cells]
    return '\n'.join([lines[0], '|' + '|'.join('---' for _ in df.columns) + '|', *lines[1:]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--probe', type=int, default=16, help='probe images for the functional losses')
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads (at most 2 on a shared machine)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--zoo', default=None, help="a built zoo directory (default: build the 'tiny' preset in a temp dir)")
    ap.add_argument('--only', default=None, help='comma-separated loss names')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')

    with tempfile.TemporaryDirectory() as tmp:
        if a.zoo is None:
            t0 = time.time(); build_zoo(ZOO_PRESETS['tiny'], tmp, workers=1, progress=False)
            print(f"built the tiny zoo in {time.time() - t0:.0f} s", flush=True)
        zoo = load_zoo(a.zoo or tmp)
        w, activation = torch.as_tensor(np.array(zoo.weights)), str(zoo.meta.activation.iloc[0])
    g = torch.Generator().manual_seed(0)
    pick = lambda: w[torch.randint(len(w), (a.batch,), generator=g)]
    target, pred, w1, w2 = pick(), pick(), pick(), pick()  # pred: other zoo models (realistic distances)
    merger = StandInMerger()
    ctx = LossContext(activation, probe=probe_batch(a.probe), layer_std=layer_std(w),
                      inputs=(w1, w2), encode=merger.encode, fuse=merger.fuse)

    names = a.only.split(',') if a.only else list(LOSSES)
    rows = []
    for name in names:
        settings = [('default', {}, a.repeats)]
        if name in CHEAPER: settings.append(('cheaper', CHEAPER[name][1], a.repeats))
        if name in FULL: settings.append(('full', FULL[name], 1))
        for kind, params, reps in settings:
            med, mn = time_loss(get_loss(name, **params), pred, target, ctx, reps, warmup=kind != 'full')
            setting = ', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'
            why = CHEAPER[name][0] if (name in CHEAPER and kind == 'default' and med > 1) else ''
            rows.append(dict(loss=name, setting=setting, kind=kind, seconds=round(med, 3), min_seconds=round(mn, 3),
                             runs=reps, over_1s=med > 1, why_slow=why))
            print(f"{name:22s} {setting:40s} {med:8.3f} s", flush=True)

    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / 'loss_speed.csv', index=False)
    cmd = 'python benchmarks/loss_speed.py' + (' ' + ' '.join(argv if argv is not None else sys.argv[1:])).rstrip()
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    head = (f"Forward + backward time of each loss on a batch of {a.batch} zoo vectors ({len(w)} vectors of the 'tiny' zoo"
            f" preset; pred and target are different zoo models), {a.probe} probe images, CPU, torch {torch.__version__.split('+')[0]},"
            f" {a.threads} thread(s), {os.cpu_count()} cores, load average {load:.1f} at the start; median of {a.repeats} runs after a warm-up"
            f" ('full': one run, no warm-up). Command: `{cmd}`.\n\n")
    md = markdown_table(df.drop(columns=['over_1s']))
    (out / 'loss_speed.md').write_text(head + md + '\n')
    print(head + md)


if __name__ == '__main__': main()
