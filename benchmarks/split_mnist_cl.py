"""Class-incremental Split MNIST with avalanche on the shipped digits: the continual-learning harness of
`weight_merging.continual` checked against van de Ven & Tolias (2019), Table 4 (class-incremental Split MNIST:
finetuning 19.9 %, EWC 20.0 %, LwF 23.9 %, replay-based methods 90.8-94.6 %, joint training ~97.9 %).

5 experiences of 2 digits (0/1, 2/3, 4/5, 6/7, 8/9), one 10-way head, test data of all 10 digits.
Strategies (avalanche): Naive finetuning, EWC, LwF, Replay (experience replay with a buffer), Joint training.
Metrics are avalanche's own: accuracy_metrics (stream), forgetting_metrics, bwt_metrics, forward_transfer_metrics.
Data: the shipped 10,000 MNIST digits with the project's balanced split (600 train per class; test = the rest).
Models: `mlp` is the paper's network (784-400-400-10, ReLU); `cnn` is the zoo's 2464-parameter CNN (ReLU).

    python benchmarks/split_mnist_cl.py --model mlp                   # the paper's batch size 128
    python benchmarks/split_mnist_cl.py --model cnn --batch_size 32   # the zoo's batch size 32
"""
import argparse, json, platform, time
from dataclasses import asdict
from pathlib import Path
import numpy as np, torch, torch.nn as nn
from weight_merging.zoo import load_digits, ZooCNN
from weight_merging.continual import CLConfig, tensor_benchmark, run_continual, CL_STRATEGIES

PUBLISHED = {'source': 'van de Ven & Tolias 2019, Three scenarios for continual learning, Table 4 (class-incremental Split MNIST, full MNIST)',
             'naive': 19.90, 'ewc': 20.01, 'lwf': 23.85, 'replay (generative replay, GR)': 90.79, 'iCaRL (2000 exemplars)': 94.57, 'joint': 97.94}

def make_model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == 'mlp': return nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10))
    if kind == 'cnn': return ZooCNN('relu', 'kaiming_uniform', seed)
    raise ValueError(f"unknown model {kind!r}; valid: mlp, cnn")

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='mlp', choices=['mlp', 'cnn'])
    p.add_argument('--epochs', type=int, default=10, help='epochs per experience (joint: epochs over all data)')
    p.add_argument('--batch_size', type=int, default=128)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--ewc_lambda', type=float, default=5000.)
    p.add_argument('--mem_size', type=int, default=500, help='replay buffer (images)')
    p.add_argument('--lwf_alpha', default='paper', help="LwF distillation weight: a number, or 'paper' for alpha = t - 1 at experience t "
                   "(new-task loss 1/t, distillation 1 - 1/t, as van de Ven & Tolias weight them)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--strategies', default=','.join(CL_STRATEGIES))
    p.add_argument('--out', default=None, help='results JSON (default: benchmarks/results/split_mnist_cl_MODEL.json)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = load_digits()
    bm = tensor_benchmark(data, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)])
    lwf_alpha = [float(t) for t in range(5)] if a.lwf_alpha == 'paper' else float(a.lwf_alpha)
    cfg = CLConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, ewc_lambda=a.ewc_lambda, lwf_alpha=lwf_alpha, mem_size=a.mem_size, eval_per_class=None)
    out = dict(benchmark='class-incremental Split MNIST, 5 experiences of 2 classes, single head', data='shipped digits (load_digits(): 600 train / 100 val per class, test = the rest)',
               n_train=sum(len(e.dataset) for e in bm.train_stream), n_test=sum(len(e.dataset) for e in bm.test_stream),
               model=a.model, config=asdict(cfg), seed=a.seed, published=PUBLISHED, results={},
               command='python benchmarks/split_mnist_cl.py ' + ' '.join(f'--{k} {v}' for k, v in vars(a).items() if k != 'out' and v is not None),
               torch=torch.__version__, machine=platform.machine())
    for s in a.strategies.split(','):
        t = time.perf_counter()
        torch.manual_seed(a.seed)
        r = run_continual(s, make_model(a.model, a.seed), bm, cfg)
        r = {k: (round(100 * v, 2) if np.isfinite(v) else None) for k, v in r.items()}   # percent
        r['seconds'] = round(time.perf_counter() - t, 1)
        out['results'][s] = r
        print(f"{a.model} {s:7s} final accuracy {r['acc_stream']:6.2f} %  forgetting {r['forgetting']}  BWT {r['bwt']}  FWT {r['fwt']}  ({r['seconds']} s)", flush=True)
    path = Path(a.out or Path(__file__).parent/'results'/f'split_mnist_cl_{a.model}.json')
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(out, indent=1))

if __name__ == '__main__': main()
