"""Evaluation speed: the batched scorer (`weight_merging.zoo.score_cnns`) against a per-model loop.

Scores N zoo CNNs on the same M test images (10-way accuracy) two ways and checks they agree
(in interleaved rounds of `--round` models, so that the shared machine's changing load affects both alike):
- per-model loop: for each CNN, `vec_to_model` (a `ZooCNN`), then its forward pass on the images in batches of `--loop_batch`;
- batched: `score_cnns` on all CNNs at once (`cnn_forward`: im2col matrix products for conv1, grouped convolutions, batched matmuls).
The CNNs are the rows of a zoo (repeated, with a little noise so that no two are equal) or random initializations.

    python benchmarks/eval_speed.py                                   # 1000 CNNs x 2000 images, 1 thread
    python benchmarks/eval_speed.py --zoo runs/zoo-quick/zoo --threads 2
"""
import argparse, json, platform, time
from pathlib import Path
import numpy as np, torch
from weight_merging.zoo import load_digits, load_zoo, vec_to_model, model_to_vec, ZooCNN, score_cnns

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', type=int, default=1000)
    p.add_argument('--images', type=int, default=2000)
    p.add_argument('--zoo', default=None, help='zoo folder whose CNNs to score (default: random initializations, trained-like scale)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--loop_batch', type=int, default=2000, help='images per forward pass in the per-model loop')
    p.add_argument('--activation', default='relu')
    p.add_argument('--round', type=int, default=100, help='models per interleaved round (loop, then batched, on the same models)')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'/'eval_speed.json'))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = load_digits()
    idx = data.indices('test', range(10), a.images // 10); x, y = data.x[idx], data.y[idx]  # the first images of each digit
    g = torch.Generator().manual_seed(0)
    if a.zoo:
        zoo = load_zoo(a.zoo); base = zoo.vectors(np.arange(a.models) % len(zoo))
        V = base + 1e-3 * torch.randn(base.shape, generator=g) * base.std()
        source = f'zoo {a.zoo}'
    else:
        V = torch.stack([model_to_vec(ZooCNN(a.activation, 'kaiming_uniform', s)) for s in range(a.models)])
        source = 'random initializations (seeds 0..N-1)'
    def loop(vs):
        accs = []
        with torch.no_grad():
            for v in vs:
                m = vec_to_model(v, a.activation).eval()
                pred = torch.cat([m(x[s:s + a.loop_batch]).argmax(1) for s in range(0, len(x), a.loop_batch)])
                accs.append((pred == y).float().mean())
        return torch.stack(accs)
    batched = lambda vs: torch.as_tensor(score_cnns(vs, a.activation, data, [range(10)] * len(vs), 'test', a.images // 10).acc.to_numpy() / 100, dtype=torch.float)
    # interleaved rounds, so that a change in the machine's load affects both alike
    t_loop = t_batch = 0.; acc_loop, acc_b = [], []
    for r in range(0, a.models, a.round):
        vs = V[r:r + a.round]
        t = time.perf_counter(); acc_loop.append(loop(vs)); t_loop += time.perf_counter() - t
        t = time.perf_counter(); acc_b.append(batched(vs)); t_batch += time.perf_counter() - t
    acc_loop, acc_b = torch.cat(acc_loop), torch.cat(acc_b)
    agree = float((acc_loop - acc_b).abs().max())
    res = dict(models=a.models, images=a.images, threads=a.threads, loop_batch=a.loop_batch, round=a.round, source=source, activation=a.activation,
               seconds_loop=round(t_loop, 2), seconds_batched=round(t_batch, 2), ratio=round(t_loop / t_batch, 2),
               max_abs_accuracy_difference=agree, torch=torch.__version__, machine=platform.machine(), processor=platform.processor(),
               command='python benchmarks/eval_speed.py ' + ' '.join(f'--{k} {v}' for k, v in vars(a).items() if k != 'out' and v is not None))
    print(f"{a.models} CNNs x {a.images} images, {a.threads} thread(s): per-model loop {t_loop:.1f} s, batched {t_batch:.1f} s, "
          f"ratio {t_loop / t_batch:.1f}x (accuracies agree to {agree:.1e})")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))

if __name__ == '__main__': main()
