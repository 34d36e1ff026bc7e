"""Forward and backward through many CNNs at once, as merger training with a functional loss needs it: images x CNNs per second.

`distill_loss` runs B predicted CNNs (B parameter vectors with gradients) on n images each, `cnn_forward(pred, x)` with
x of shape (B, n, 1, 28, 28), and back-propagates to the weights. This measures that pass (forward, a scalar loss of
the logits, backward to the (B, 2464) vectors) for the current `cnn_forward` and for the previous one (a verbatim copy
below: grouped convolutions in the default NCHW memory layout; the current one runs them channels-last), checks that
both give the same logits and gradients (up to rounding, which can flip the maximum of a 2x2 pooling window between
two near-equal values, and with it the gradient of that CNN), and prints images x CNNs per second, GFLOP/s (the CNN's forward+backward
FLOPs from its layer shapes) and the share of a large FP32 matrix product measured here on the same threads.

    python benchmarks/cnn_throughput.py                      # B, n in (16, 64), (64, 64), (256, 16); one thread
    python benchmarks/cnn_throughput.py --threads 2 --shapes 64x64
"""
import argparse, math, os, platform, time
import torch, torch.nn.functional as F
from weight_merging.zoo import ACT_FNS, LAYERS, ZooCNN, check_activation, cnn_forward, load_digits, model_to_vec, vec_to_params

def train_flops_per_image() -> float:
    "FLOPs of one image through the zoo CNN, forward and backward: multiply-adds from the layer shapes, x2 FLOP, x3."
    sizes = {'conv1': 24, 'conv2': 8, 'conv3': 3}  # output side of each convolution
    macs = sum(math.prod(LAYERS[f'{k}.weight']) * s * s for k, s in sizes.items()) + sum(math.prod(LAYERS[f'{k}.weight']) for k in ('fc1', 'fc2'))
    return 3 * 2 * macs

def matmul_peak(n: int = 2048, seconds: float = 2.) -> float:
    "GFLOP/s of an n x n FP32 matrix product on the current threads (best of repeated runs)."
    a, b = torch.randn(n, n), torch.randn(n, n); torch.mm(a, b)
    best, t0 = 0., time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter(); torch.mm(a, b); best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best

# ---- the previous cnn_forward, verbatim (commit 49c088e), as the baseline ----
def old_cnn_forward(params,  # (M, 2464) parameter vectors, or a dict of stacked layer tensors (M, *shape)
                x: torch.Tensor,  # images shared by all M CNNs (n, 1, 28, 28), or each CNN's own (M, n, 1, 28, 28)
                activation: str = 'relu',
                dropout: float = 0.,  # dropout after every hidden activation (training only)
                hidden: bool = False):  # also return the input of conv2, conv3, fc1 and fc2 of each CNN
    "Logits (M, n, 10) of M zoo CNNs, the `ZooCNN` forward pass batched over models; differentiable."
    P = vec_to_params(params) if isinstance(params, torch.Tensor) else params
    act, M, n = ACT_FNS[check_activation(activation)], len(P['conv1.bias']), x.shape[-4]
    if x.shape[-3:] != (1, 28, 28) or x.dim() not in (4, 5) or (x.dim() == 5 and len(x) != M):
        raise ValueError(f"expected images (n, 1, 28, 28) or ({M}, n, 1, 28, 28), got {tuple(x.shape)}")
    drop = (lambda h: F.dropout(h, dropout)) if dropout else (lambda h: h)
    W1, b1 = P['conv1.weight'].reshape(M * 8, 1, 5, 5), P['conv1.bias'].reshape(-1)
    if x.dim() == 4 and not torch.is_grad_enabled():  # conv1 at the 4 offsets of each pooling window as one product, then the max
        U = F.unfold(x, 5).transpose(1, 2).reshape(n, 12, 2, 12, 2, 25).permute(2, 4, 0, 1, 3, 5).reshape(4, n * 144, 25)
        h = (U @ W1.reshape(M * 8, 25).T).amax(0).view(n, 12, 12, M * 8).permute(0, 3, 1, 2) + b1.reshape(1, -1, 1, 1)
    elif x.dim() == 4: h = F.max_pool2d(F.conv2d(x, W1, b1), 2)  # with gradients: max_pool2d's choice among ties, as in ZooCNN
    else: h = F.max_pool2d(F.conv2d(x.transpose(0, 1).reshape(n, M, 28, 28), W1, b1, groups=M), 2)
    h1 = drop(act(h))  # (n, M*8, 12, 12): CNN m's channels are 8m … 8m+7
    h2 = drop(act(F.max_pool2d(F.conv2d(h1, P['conv2.weight'].reshape(M * 6, 8, 5, 5), P['conv2.bias'].reshape(-1), groups=M), 2)))
    h3 = drop(act(F.conv2d(h2, P['conv3.weight'].reshape(M * 4, 6, 2, 2), P['conv3.bias'].reshape(-1), groups=M)).reshape(n, M, 36).transpose(0, 1))
    h4 = drop(act(torch.baddbmm(P['fc1.bias'][:, None], h3, P['fc1.weight'].transpose(1, 2))))
    out = torch.baddbmm(P['fc2.bias'][:, None], h4, P['fc2.weight'].transpose(1, 2))
    if not hidden: return out
    per_cnn = lambda h, c, s: h.reshape(n, M, c, s, s).transpose(0, 1)
    return out, {'conv2': per_cnn(h1, 8, 12), 'conv3': per_cnn(h2, 6, 4), 'fc1': h3, 'fc2': h4}


def rate(f, w, x, seconds):
    "Images x CNNs per second of forward + backward of `f`, alternating-safe: best of 3 timed blocks of `seconds`/3."
    f(w, x).logsumexp(-1).sum().backward()
    best = 0.
    for _ in range(3):
        t, r = time.perf_counter(), 0
        while time.perf_counter() - t < seconds / 3:
            w.grad = None; f(w, x).logsumexp(-1).sum().backward(); r += 1
        best = max(best, r * x.shape[0] * x.shape[1] / (time.perf_counter() - t))
    return best

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shapes', default='16x64,64x64,256x16', help='comma-separated BxN: B CNNs, n images each')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--activation', default='relu')
    p.add_argument('--seconds', type=float, default=3., help='timing per formulation and shape')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data, fl = load_digits(), train_flops_per_image()
    peak = matmul_peak()
    print(f"{a.threads} thread(s), {os.cpu_count()} CPU cores (shared with other jobs: compare ratios, not times), torch {torch.__version__}, "
          f"{fl / 1e6:.3f} MFLOP per image forward+backward; FP32 matmul peak (torch.mm 2048x2048): {peak:.1f} GFLOP/s")
    for shape in a.shapes.split(','):
        B, n = map(int, shape.split('x'))
        g = torch.Generator().manual_seed(B * 1000 + n)
        w = torch.stack([model_to_vec(ZooCNN(a.activation, 'kaiming_uniform', s)) for s in range(B)])
        x = data.x[torch.randint(len(data.x), (B, n), generator=g)]
        wo, wn = w.clone().requires_grad_(), w.clone().requires_grad_()
        lo, ln = old_cnn_forward(wo, x, a.activation), cnn_forward(wn, x, a.activation)
        lo.logsumexp(-1).sum().backward(); ln.logsumexp(-1).sum().backward()
        err_l = ((lo - ln).abs().max() / lo.abs().max()).item()
        err_g = ((wo.grad - wn.grad).norm(dim=1) / wo.grad.norm(dim=1))  # per CNN, relative
        same = int((err_g < 1e-4).sum())  # a CNN can differ where rounding flips the maximum of a 2x2 pooling window between two near-equal values
        assert err_l < 1e-5 and same >= 0.98 * B, (err_l, err_g.max())
        r = {}
        for name, f in (('previous', old_cnn_forward), ('current', cnn_forward), ('previous', old_cnn_forward), ('current', cnn_forward)):
            r[name] = max(r.get(name, 0.), rate(f, wn, x, a.seconds / 2))
        for name in ('previous', 'current'):
            gf = r[name] * fl / 1e9
            print(f"  B={B:4d} CNNs x n={n:3d} images  {name:8s}: {r[name]:9,.0f} images x CNNs/s = {gf:5.1f} GFLOP/s = {100 * gf / peak:4.1f} % of peak")
        print(f"  B={B:4d} CNNs x n={n:3d} images  ratio {r['current'] / r['previous']:.2f}x  (logits equal to {err_l:.1e}; gradients equal to 1e-4 "
              f"for {same}/{B} CNNs, largest relative difference {err_g.max():.1e})")

if __name__ == '__main__': main()
