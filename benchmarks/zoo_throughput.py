"""Zoo-building throughput: model-epochs per second of the project's builder against the straightforward way.

The straightforward way trains one model at a time: a `ZooCNN`, `torch.optim.Adam` with `CyclicLR`, a `DataLoader`
over a `TensorDataset` of the experience's training images, and per-epoch validation and test passes (needed for early
stopping and for the zoo's records). The project's builder (`build_zoo`) trains the same experiences, with the same batch
size and epochs, as populations of models in lockstep, in one process per CPU core (or one population on a GPU).
Early stopping is switched off in both so that both do exactly the same number of model-epochs.

    python benchmarks/zoo_throughput.py                  # CPU, 21 two-class models of digits 0-6, 3 epochs
    python benchmarks/zoo_throughput.py --device cuda --classes 10 --epochs 2 --chunk 1024
"""
import argparse, os, tempfile, time, json, platform, subprocess
import torch, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from weight_merging.zoo import ZooConfig, TrainConfig, ZooCNN, zoo_specs, load_digits
from weight_merging.build import build_zoo

def straightforward(specs, data, tc, device):
    "One model at a time, DataLoader over TensorDataset: returns model-epochs done."
    done = 0
    for s in specs:
        tr, va, te = (data.indices(k, s.classes) for k in ('train', 'val', 'test'))
        model = ZooCNN(s.activation, s.init, s.seed).to(device)
        loader = DataLoader(TensorDataset(data.x[tr], data.y[tr]), batch_size=tc.batch_size, shuffle=True)
        opt = torch.optim.Adam(model.parameters(), lr=tc.base_lr)
        sched = torch.optim.lr_scheduler.CyclicLR(opt, tc.base_lr, tc.max_lr, step_size_up=round(tc.cycle_epochs*len(loader)), cycle_momentum=False)
        for ep in range(tc.epochs):
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            model.eval()
            with torch.no_grad():
                for idx in (va, te):
                    correct = 0
                    for xb, yb in DataLoader(TensorDataset(data.x[idx], data.y[idx]), batch_size=tc.eval_batch):
                        correct += (model(xb.to(device)).argmax(1) == yb.to(device)).sum().item()
            done += 1
    return done

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--classes', type=int, default=7, help='experiences: all 2-class subsets of digits 0..classes-1')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--chunk', type=int, default=None, help='models per population (default: split evenly over the workers)')
    p.add_argument('--out', default=None, help='also write the results as JSON here')
    a = p.parse_args()
    tc = TrainConfig(epochs=a.epochs, bins=(a.epochs,), min_epochs=a.epochs)
    workers = 1 if a.device != 'cpu' else (os.cpu_count() or 1)
    n_models = a.classes*(a.classes - 1)//2
    chunk = a.chunk or -(-n_models // workers)
    cfg = ZooConfig('bench', classes=range(a.classes), sizes=(2,), chunk_size=chunk, train=tc)
    specs = zoo_specs(cfg)
    data = load_digits().to(a.device)
    print(f'{len(specs)} models x {a.epochs} epochs, batch {tc.batch_size}, device {a.device}, {os.cpu_count()} CPU cores, torch {torch.__version__}')
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        s = build_zoo(cfg, tmp, workers=workers, device=a.device, progress=False, assemble=False)
        t_proj = time.perf_counter() - t
    t = time.perf_counter()
    me_base = straightforward(specs, data, tc, a.device)
    t_base = time.perf_counter() - t
    me_proj = s['model_epochs']
    assert me_proj == me_base, (me_proj, me_base)
    r_proj, r_base = me_proj/t_proj, me_base/t_base
    print(f'project builder ({workers} worker(s), populations of {chunk}): {me_proj} model-epochs in {t_proj:.1f} s = {r_proj:.2f} model-epochs/s')
    print(f'straightforward loop (one model at a time, DataLoader):  {me_base} model-epochs in {t_base:.1f} s = {r_base:.2f} model-epochs/s')
    print(f'ratio: {r_proj/r_base:.2f}x')
    if a.out:
        res = dict(models=len(specs), epochs=a.epochs, device=a.device, cpu_cores=os.cpu_count(), workers=workers, chunk=chunk,
                   project_model_epochs_per_s=r_proj, baseline_model_epochs_per_s=r_base, ratio=r_proj/r_base,
                   torch=torch.__version__, machine=platform.machine())
        with open(a.out, 'w') as f: json.dump(res, f, indent=1)

if __name__ == '__main__': main()
