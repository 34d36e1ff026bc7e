"""Zoo-building throughput: the population trainer against its previous version, in GFLOP/s and as a share of the machine's peak.

The workload is the quick zoo's (`zoo_preset('quick')`: the 57 experiences of digits 0-5 in its 9 chunks) with fewer epochs
and early stopping off, so both trainers do exactly the same model-epochs. Part 1 trains every chunk with the previous
trainer (`old_train_population` below: a verbatim copy, with the `cnn_forward` and per-epoch scoring it used) and with the
current `train_population`, alternately, in this process on one thread (as each builder worker does), and prints the
ratio. Part 2 runs the whole builder (`build_zoo`, one single-threaded process per core) for the wall-clock rate and the
projected time of the `standard` zoo. GFLOP/s counts the CNN's training FLOPs (forward and backward, from its layer
shapes) and is compared with a large FP32 matrix product (`torch.mm`) measured here on the same number of threads.

    python benchmarks/zoo_throughput.py                   # 3 epochs of the quick workload
    python benchmarks/zoo_throughput.py --epochs 2 --out benchmarks/results/zoo_throughput.json
"""
import argparse, json, math, os, platform, tempfile, time
from typing import Sequence
import numpy as np, pandas as pd, torch, torch.nn as nn, torch.nn.functional as F
import weight_merging.zoo as Z
from weight_merging.zoo import (ACT_FNS, MNISTData, ModelSpec, TrainConfig, ZooCNN, bin_of, check_activation, load_digits, model_to_vec,
                                params_to_vec, score_cnns, vec_to_params, zoo_chunks, zoo_preset, LAYERS)
from weight_merging.build import TrainResult, train_population, build_zoo

def train_flops_per_image() -> float:
    "FLOPs of one training image through the zoo CNN: forward multiply-adds from the layer shapes, x2 FLOP, x3 for forward+backward."
    sizes = {'conv1': 24, 'conv2': 8, 'conv3': 3}  # output side of each convolution (28-5+1, 12-5+1, 4-2+1)
    macs = sum(math.prod(LAYERS[f'{k}.weight']) * s * s for k, s in sizes.items()) + sum(math.prod(LAYERS[f'{k}.weight']) for k in ('fc1', 'fc2'))
    return 3 * 2 * macs

def matmul_peak(threads: int, n: int = 2048, seconds: float = 2.) -> float:
    "GFLOP/s of an n x n FP32 matrix product on `threads` threads (best of repeated runs)."
    prev = torch.get_num_threads(); torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n); torch.mm(a, b)
    best, t0 = 0., time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter(); torch.mm(a, b); best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    torch.set_num_threads(prev)
    return best

# ---- the previous trainer, verbatim (commit 49c088e), as the baseline ----
from cnn_throughput import old_cnn_forward  # the previous cnn_forward, verbatim (49c088e): one copy, kept in cnn_throughput.py


def old_train_population(specs: Sequence[ModelSpec], data: MNISTData, cfg: TrainConfig = None, device='cpu') -> list[TrainResult]:
    "Train CNNs of one activation and one experience size together; each gets exactly its own Adam and data order."
    cfg = cfg or TrainConfig()
    specs = list(specs)
    acts, sizes = {s.activation for s in specs}, {len(s.classes) for s in specs}
    if len(acts) != 1 or len(sizes) != 1: raise ValueError(f"a population needs one activation and one experience size, got {acts} and {sizes}")
    act, M = specs[0].activation, len(specs)
    splits = {r: data.replica(r) for r in {s.replica for s in specs}}  # each replica trains on its own split
    tr_rows = [splits[s.replica].indices('train', s.classes) for s in specs]
    n = len(tr_rows[0])
    if any(len(r) != n for r in tr_rows): raise ValueError("experiences of one population need equal training sets (use a balanced split)")
    tr_idx = torch.stack(tr_rows).to(device)
    gens = [torch.Generator().manual_seed(s.data_seed()) for s in specs]
    w = torch.stack([model_to_vec(ZooCNN(s.activation, s.init, s.seed)) for s in specs]).to(device)
    params = {k: nn.Parameter(v.contiguous()) for k, v in vec_to_params(w).items()}
    steps = math.ceil(n / cfg.batch_size)
    opt = torch.optim.Adam(params.values(), lr=cfg.base_lr)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, cfg.base_lr, cfg.max_lr, step_size_up=max(1, round(cfg.cycle_epochs*steps)), cycle_momentum=False)
    alive = list(range(M))  # population row -> spec index
    hist = {k: np.full((M, cfg.epochs), np.nan, np.float32) for k in ('train_loss', 'val_acc', 'test_acc', 'test_loss')}
    hist['confusion'] = np.zeros((M, cfg.epochs, 10, 10), np.int32)
    ckpt, stop, prev, stag = [dict() for _ in specs], [cfg.epochs]*M, [None]*M, [0]*M
    def score(vec, split):  # each replica's models on its own split's images (the test images are shared)
        rep, cls = np.array([specs[j].replica for j in alive]), [specs[j].classes for j in alive]
        return pd.concat([score_cnns(vec[torch.as_tensor(rep == r)], act, sd, [c for c, q in zip(cls, rep) if q == r], split, confusion=True)
                          .set_index(np.nonzero(rep == r)[0]) for r, sd in splits.items() if (rep == r).any()]).sort_index()
    for ep in range(1, cfg.epochs + 1):
        perms = torch.stack([torch.randperm(n, generator=gens[j]) for j in alive]).to(device)
        ep_loss = torch.zeros(len(alive), device=device)
        for s in range(steps):
            rows = torch.arange(len(alive), device=device)
            ib = tr_idx[torch.as_tensor(alive, device=device)][rows[:, None], perms[:, s*cfg.batch_size:(s + 1)*cfg.batch_size]]
            logits = old_cnn_forward(params, data.x[ib], act, cfg.dropout)
            l = F.cross_entropy(logits.flatten(0, 1), data.y[ib].flatten(), reduction='none').view(ib.shape).mean(1)
            opt.zero_grad(set_to_none=True); l.sum().backward(); opt.step(); sched.step()
            ep_loss += l.detach()*ib.shape[1]
        vec = params_to_vec({k: p.detach() for k, p in params.items()})
        vacc, te = score(vec, 'val').acc.to_numpy(), score(vec, 'test')
        tacc, tloss, conf = te.acc.to_numpy(), te.loss.to_numpy(), te.confusion.to_numpy()
        keep = []
        for r, j in enumerate(alive):
            va = float(vacc[r])
            hist['train_loss'][j, ep-1] = float(ep_loss[r])/n; hist['val_acc'][j, ep-1] = va
            hist['test_acc'][j, ep-1] = float(tacc[r]); hist['test_loss'][j, ep-1] = float(tloss[r]); hist['confusion'][j, ep-1] = conf[r]
            stag[j] = stag[j] + 1 if prev[j] is not None and abs(va - prev[j]) <= cfg.margin else 0
            prev[j] = va
            done = ep == cfg.epochs or (ep >= cfg.min_epochs and stag[j] >= cfg.patience)
            b = bin_of(ep, cfg.bins)
            if b is not None and (ep == b or done): ckpt[j][b] = (ep, vec[r].float().cpu().numpy().copy())
            if done: stop[j] = ep
            else: keep.append(r)
        if not keep: break
        if len(keep) < len(alive):  # drop stopped models from the weights and from Adam's state
            kt = torch.as_tensor(keep, device=device)
            for k, p in list(params.items()):
                q = params[k] = nn.Parameter(p.detach()[kt].contiguous())
                st = opt.state.pop(p)
                opt.state[q] = {n: (v[kt].contiguous() if n.startswith('exp_avg') else v) for n, v in st.items()}
            opt.param_groups[0]['params'] = list(params.values())
            alive = [alive[r] for r in keep]
    return [TrainResult(s, ckpt[j], stop[j], {k: v[j, :stop[j]] for k, v in hist.items()}) for j, s in enumerate(specs)]


class previous_forward:
    "Within this block, the project's scorer (`score_cnns`) uses the previous `cnn_forward` too."
    def __enter__(self): self.new, Z.cnn_forward = Z.cnn_forward, old_cnn_forward
    def __exit__(self, *a): Z.cnn_forward = self.new

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=3, help='epochs of every model (early stopping off)')
    p.add_argument('--workers', type=int, default=None, help='builder processes in part 2 (default: every CPU core)')
    p.add_argument('--skip_build', action='store_true', help='part 1 only')
    p.add_argument('--out', default=None, help='also write the results as JSON here')
    a = p.parse_args()
    workers = a.workers or os.cpu_count() or 1
    cfg = zoo_preset('quick', train=TrainConfig(epochs=a.epochs, bins=(a.epochs,), min_epochs=a.epochs))
    chunks, data, fl = zoo_chunks(cfg), load_digits(), train_flops_per_image()
    n_img = sum(len(c) * len(c[0].classes) * 600 for c in chunks) * a.epochs  # training images seen (600 per class)
    print(f"quick workload: {sum(map(len, chunks))} models in {len(chunks)} chunks x {a.epochs} epochs = {n_img:,} training images; "
          f"{fl / 1e6:.3f} MFLOP per training image; {os.cpu_count()} CPU cores (shared with other jobs: compare ratios, not times), torch {torch.__version__}")
    peak1 = matmul_peak(1); peakw = matmul_peak(workers)
    print(f"FP32 matmul peak (torch.mm 2048x2048): {peak1:.1f} GFLOP/s on 1 thread, {peakw:.1f} GFLOP/s on {workers} threads")
    torch.set_num_threads(1)
    t_old = t_new = 0.; me_old = me_new = 0; dacc = []
    for i, ch in enumerate(chunks):  # alternate the order so that drifting load hits both
        for which in (('old', 'new') if i % 2 == 0 else ('new', 'old')):
            t = time.perf_counter()
            if which == 'old':
                with previous_forward(): ro = old_train_population(ch, data, cfg.train)
                t_old += time.perf_counter() - t; me_old += sum(len(r.history['val_acc']) for r in ro)
            else:
                rn = train_population(ch, data, cfg.train)
                t_new += time.perf_counter() - t; me_new += sum(len(r.history['val_acc']) for r in rn)
        dacc += [abs(float(x.history['test_acc'][-1]) - float(y.history['test_acc'][-1])) for x, y in zip(ro, rn)]
    assert me_old == me_new == sum(map(len, chunks)) * a.epochs, (me_old, me_new)
    g_old, g_new = n_img * fl / t_old / 1e9, n_img * fl / t_new / 1e9
    print(f"part 1, one thread, same process, same {me_new} model-epochs (training + per-epoch val/test scoring):")
    print(f"  previous trainer: {t_old:6.1f} s = {me_old / t_old:5.2f} model-epochs/s = {g_old:5.1f} GFLOP/s = {100 * g_old / peak1:4.1f} % of the 1-thread peak")
    print(f"  current trainer:  {t_new:6.1f} s = {me_new / t_new:5.2f} model-epochs/s = {g_new:5.1f} GFLOP/s = {100 * g_new / peak1:4.1f} % of the 1-thread peak")
    print(f"  ratio: {t_old / t_new:.2f}x   (final test accuracy, previous vs current: max difference {max(dacc):.2f} points over {len(dacc)} models)")
    res = dict(epochs=a.epochs, models=sum(map(len, chunks)), model_epochs=me_new, train_images=n_img, mflop_per_image=fl / 1e6,
               peak_gflops_1thread=peak1, peak_gflops_workers=peakw, workers=workers, old_seconds=t_old, new_seconds=t_new,
               ratio=t_old / t_new, old_gflops=g_old, new_gflops=g_new, max_test_acc_diff=max(dacc),
               cpu_cores=os.cpu_count(), torch=torch.__version__, machine=platform.machine())
    if not a.skip_build:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter(); s = build_zoo(cfg, tmp, workers=workers, progress=False, assemble=False); wall = time.perf_counter() - t
        gb = n_img * fl / wall / 1e9
        std = zoo_preset('standard')
        std_img = sum(len(c) * len(c[0].classes) * 600 for c in zoo_chunks(std)) * std.train.epochs  # every model for all 40 epochs
        print(f"part 2, the builder (build_zoo, {s['workers']} processes): {s['model_epochs']} model-epochs in {wall:.1f} s wall = "
              f"{n_img / wall:,.0f} images/s = {gb:.1f} GFLOP/s = {100 * gb / peakw:.1f} % of the {workers}-thread peak")
        print(f"  the standard zoo ({len(zoo_chunks(std))} chunks, {std_img / std.train.epochs:,.0f} training images an epoch) at this rate: "
              f"at most {std_img / (n_img / wall) / 3600:.1f} h for all {std.train.epochs} epochs (early stopping ends most models sooner)")
        res.update(build_seconds=wall, build_gflops=gb, build_images_per_s=n_img / wall, standard_hours_max=std_img / (n_img / wall) / 3600)
    if a.out:
        with open(a.out, 'w') as f: json.dump(res, f, indent=1)

if __name__ == '__main__': main()
