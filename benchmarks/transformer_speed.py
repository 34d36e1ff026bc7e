"""Transformer training speed: steps per second of the project's `TransformerAE` against a faithful re-implementation
of the report's listing (§4.1, Figure 4) at the same configuration, batch and optimizer.

The reference (`Report*` classes below, kept here and not in the library) follows the listing: hand-written
`attention(q, k, v, d_k, mask, dropout)` with matmul / masked_fill / softmax, `MultiHeadAttention` with view/transpose,
the tutorial `Norm` and `FeedForward`, `EmbedderNeuronGroup.multilinear` looping over the 50 chunks in Python,
`PositionalEncoder` moving its table to the device at every call, `Neck2Seq` as a Python loop over 50 linears, and
`Seq2Vec`. Its garbled parts (the EncoderLayer's branches, the missing FeedForward/Norm, the pooling) are completed the
way the project's model does them, so both have exactly the same parameters (checked: 210,546,336 at the report config).

Both models are trained with the same loss (MSE to a target vector), the same optimizer (fused Adam; `--default_adam`
for torch's default, which on a CPU loops over the parameter tensors) and the same random standardized inputs. Timings
are interleaved in rounds and the median over rounds is reported. On a CPU with one thread (the default) the rate is
steps per second of process CPU time, which other processes sharing the cores do not distort; wall-clock rates are
printed beside it. `--breakdown` also times each part of both models alone (embedders, encoder layers with their attention
core and norms, Neck2Seq, Seq2Vec, the optimizer step) and prints where a training step spends its time.

    python benchmarks/transformer_speed.py                         # CPU, 'small' preset, batch 36
    python benchmarks/transformer_speed.py --breakdown             # ... and the time of each part of both models
    python benchmarks/transformer_speed.py --preset report --d_model 240 --neck 128    # a reduced report config
    python benchmarks/transformer_speed.py --device cuda --preset report --bf16         # GPU: the report model, bf16
"""
import argparse, copy, datetime, json, math, os, platform, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
from weight_merging.transformer import TransformerAE, transformer_preset

# ---------------------------------------------------------------- the report's listing (reference)
def get_clones(module, N):
    return nn.ModuleList([copy.deepcopy(module) for i in range(N)])

class PositionalEncoder(nn.Module):
    def __init__(self, d_model, max_seq_len=80, device="cuda"):
        super().__init__()
        self.d_model = d_model
        self.device = device
        self.pe = self._generate_positional_encoding(max_seq_len, d_model)
    def forward(self, x):
        x = x * math.sqrt(self.d_model)
        seq_len = x.size(1)
        pe = self.pe[:, :seq_len]
        pe = pe.to(self.device)
        x = x + pe
        return x
    def _generate_positional_encoding(self, max_seq_len, d_model):
        pe = torch.zeros(max_seq_len, d_model)
        position = torch.arange(0, max_seq_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        return pe.unsqueeze(0)

def attention(q, k, v, d_k, mask=None, dropout=None):
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        mask = mask.unsqueeze(1)
        scores = scores.masked_fill(mask == 0, -1e9)
    scores = F.softmax(scores, dim=-1)
    if dropout is not None:
        scores = dropout(scores)
    output = torch.matmul(scores, v)
    return output, scores

class MultiHeadAttention(nn.Module):
    def __init__(self, heads, d_model, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.d_k = d_model // heads
        self.h = heads
        self.q_linear = nn.Linear(d_model, d_model)
        self.v_linear = nn.Linear(d_model, d_model)
        self.k_linear = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, d_model)
    def forward(self, q, k, v, mask=None):
        bs = q.size(0)
        k = self.k_linear(k).view(bs, -1, self.h, self.d_k)
        q = self.q_linear(q).view(bs, -1, self.h, self.d_k)
        v = self.v_linear(v).view(bs, -1, self.h, self.d_k)
        k, q, v = k.transpose(1, 2), q.transpose(1, 2), v.transpose(1, 2)
        scores, sc = attention(q, k, v, self.d_k, mask, self.dropout)
        concat = scores.transpose(1, 2).contiguous().view(bs, -1, self.d_model)
        return self.out(concat), sc

class FeedForward(nn.Module):  # the tutorial's block the listing uses (not printed in the report)
    def __init__(self, d_model, d_ff=2048, dropout=0.1):
        super().__init__()
        self.linear_1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear_2 = nn.Linear(d_ff, d_model)
    def forward(self, x):
        return self.linear_2(self.dropout(F.relu(self.linear_1(x))))

class Norm(nn.Module):  # the tutorial's layer norm: 2·d_model parameters (Figure 5: 1,920)
    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.size = d_model
        self.alpha = nn.Parameter(torch.ones(self.size))
        self.bias = nn.Parameter(torch.zeros(self.size))
        self.eps = eps
    def forward(self, x):
        return self.alpha * (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + self.eps) + self.bias

class EncoderLayer(nn.Module):
    def __init__(self, d_model, heads, normalize=True, dropout=0.1, d_ff=2048):
        super().__init__()
        self.normalize = normalize
        if normalize:
            self.norm_1 = Norm(d_model)
            self.norm_2 = Norm(d_model)
        self.attn = MultiHeadAttention(heads, d_model, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.dropout_1 = nn.Dropout(dropout)
        self.dropout_2 = nn.Dropout(dropout)
    def forward(self, x, mask):
        x2 = self.norm_1(x) if self.normalize else x.clone()
        res, sc = self.attn(x2, x2, x2, mask)
        x = x + self.dropout_1(res)
        x2 = self.norm_2(x) if self.normalize else x.clone()
        x = x + self.dropout_2(self.ff(x2))
        return x, sc

class EmbedderNeuronGroup(nn.Module):
    def __init__(self, d_model, seed=22):
        super().__init__()
        self.neuron_l1 = nn.Linear(16, d_model)  # 24
        self.neuron_l2 = nn.Linear(80, d_model)  # 26
    def forward(self, x):
        return self.multilinear(x)
    def multilinear(self, v):
        l = []
        for ndx in range(26):
            idx_start = ndx * 80
            idx_end = idx_start + 80
            l.append(self.neuron_l2(v[:, idx_start:idx_end]).clone())
        for ndx in range(24):
            idx_start = 26 * 80 + ndx * 16
            idx_end = idx_start + 16
            l.append(self.neuron_l1(v[:, idx_start:idx_end]).clone())
        return torch.stack(l, dim=1)

class EncoderNeuronGroup(nn.Module):
    def __init__(self, d_model, N, heads, max_seq_len, dropout, d_ff, device):
        super().__init__()
        self.N = N
        self.embed = EmbedderNeuronGroup(d_model)
        self.pe = PositionalEncoder(d_model, max_seq_len, device)
        self.layers = get_clones(EncoderLayer(d_model, heads, True, dropout, d_ff), N)
        self.norm = Norm(d_model)
    def forward(self, src, mask=None):
        x = self.pe(self.embed(src))
        for i in range(self.N):
            x, sc = self.layers[i](x, mask)
        return self.norm(x).mean(1)  # pooled to one d_model vector (as the project's model)

class Neck2Seq(nn.Module):
    def __init__(self, neck, d_model, n_tokens=50):
        super().__init__()
        self.neurons = nn.ModuleList([nn.Linear(neck, d_model) for _ in range(n_tokens)])
    def forward(self, z):
        return torch.stack([lin(z) for lin in self.neurons], dim=1)

class Seq2Vec(nn.Module):
    def __init__(self, d_model, n_tokens=50, n_params=2464):
        super().__init__()
        self.linear = nn.Linear(n_tokens * d_model, n_params)
    def forward(self, x):
        return self.linear(x.view(x.shape[0], -1))

class DecoderNeuronGroup(nn.Module):
    def __init__(self, d_model, N, heads, max_seq_len, neck, dropout, d_ff, device):
        super().__init__()
        self.N = N
        self.neck2seq = Neck2Seq(neck, d_model)
        self.pe = PositionalEncoder(d_model, max_seq_len, device)
        self.layers = get_clones(EncoderLayer(d_model, heads, True, dropout, d_ff), N)
        self.norm = Norm(d_model)
        self.seq2vec = Seq2Vec(d_model)
    def forward(self, z, mask=None):
        x = self.pe(self.neck2seq(z))
        for i in range(self.N):
            x, sc = self.layers[i](x, mask)
        return self.seq2vec(self.norm(x))

class ReportTransformerAE(nn.Module):
    "The report's double-encoder model as its listing writes it."
    def __init__(self, d_model=960, N=4, heads=4, d_ff=960, neck=512, dropout=0.07, max_seq_len=50, device='cpu'):
        super().__init__()
        self.enc1 = EncoderNeuronGroup(d_model, N, heads, max_seq_len, dropout, d_ff, device)
        self.enc2 = EncoderNeuronGroup(d_model, N, heads, max_seq_len, dropout, d_ff, device)
        self.dec = DecoderNeuronGroup(d_model, N, heads, max_seq_len, neck, dropout, d_ff, device)
        self.neck = nn.Linear(2 * d_model, neck)
        self.tanh = nn.Tanh()
    def forward(self, w1, w2):
        z = self.tanh(self.neck(torch.cat([self.enc1(w1), self.enc2(w2)], dim=-1)))
        return self.dec(z)

# ---------------------------------------------------------------- timing
def n_params(m): return sum(p.numel() for p in m.parameters())

def make_step(model, opt, batch, bf16, device):
    w1, w2, y = batch
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(model(w1, w2).float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss
    return step

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def timed_rounds(steps, rounds, per_round, warmup, device):
    "steps: name -> step function. Interleaved rounds; returns name -> list of steps/s by wall clock and by process CPU time."
    for s in steps.values():
        for _ in range(warmup): s()
    sync(device)
    wall, cpu = {k: [] for k in steps}, {k: [] for k in steps}
    for _ in range(rounds):
        for k, s in steps.items():
            sync(device); t, c = time.perf_counter(), time.process_time()
            for _ in range(per_round): s()
            sync(device); wall[k].append(per_round / (time.perf_counter() - t)); cpu[k].append(per_round / (time.process_time() - c))
    return wall, cpu

def fwd_bwd(f, grad, leaves):
    "A closure: forward `f()`, backward `grad`, then drop the gradients of `leaves` (parameters and inputs), as a step does."
    def run():
        out = f()
        out.backward(grad)
        for t in leaves: t.grad = None
    return run

def breakdown(cfg, models, batch_size, rounds, reps, device, adam_kw):
    """Per-step time of each part of the two models, each timed alone (forward + backward, or the optimizer step), in ms of
    process time: part name -> (count per step, project ms, listing ms), counts already multiplied in."""
    ours, ref = models['project'], models['report listing']
    B, T, d, h, N = batch_size, ours.tok.n_tokens, cfg.d_model, cfg.heads, cfg.n_layers
    g = torch.Generator(device='cpu').manual_seed(1)
    rnd = lambda *shape, grad=False: torch.randn(*shape, generator=g).to(device).requires_grad_(grad)
    w, x, gx = rnd(B, cfg.n_params), rnd(B, T, d, grad=True), rnd(B, T, d)
    qkv = [rnd(B, T, d, grad=True) for _ in range(3)]
    heads = lambda: [t.view(B, T, h, d // h).transpose(1, 2) for t in qkv]
    gh = rnd(B, h, T, d // h)
    z, flat, gvec = rnd(B, cfg.neck, grad=True), rnd(B, T * d, grad=True), rnd(B, cfg.n_params)
    e_ours, e_ref = ours.encoders[0], ref.enc1
    l_ours, l_ref = e_ours.layers[0], e_ref.layers[0]
    drop = nn.Dropout(cfg.dropout)
    ps = lambda m: list(m.parameters())
    parts = {  # name -> (count per step, project closure, listing closure)
        'embedder (tokens -> d_model)': (2, fwd_bwd(lambda: e_ours.embed(ours.tok.tokenize(w)), gx, ps(e_ours.embed)),
                                         fwd_bwd(lambda: e_ref.embed(w), gx, ps(e_ref.embed))),
        'encoder layer (whole)': (3 * N, fwd_bwd(lambda: l_ours(x), gx, ps(l_ours) + [x]),
                                  fwd_bwd(lambda: l_ref(x, None)[0], gx, ps(l_ref) + [x])),
        '  its attention core': (3 * N, fwd_bwd(lambda: F.scaled_dot_product_attention(*heads(), dropout_p=cfg.dropout), gh, qkv),
                                 fwd_bwd(lambda: attention(*heads(), d // h, None, drop)[0], gh, qkv)),
        '  its 2 norms': (2 * 3 * N, fwd_bwd(lambda: l_ours.norm_1(x), gx, ps(l_ours.norm_1) + [x]),
                          fwd_bwd(lambda: l_ref.norm_1(x), gx, ps(l_ref.norm_1) + [x])),
        'final norm': (3, fwd_bwd(lambda: e_ours.norm(x), gx, ps(e_ours.norm) + [x]), fwd_bwd(lambda: e_ref.norm(x), gx, ps(e_ref.norm) + [x])),
        'Neck2Seq': (1, fwd_bwd(lambda: ours.decoder.neck2seq(z), gx, ps(ours.decoder.neck2seq) + [z]),
                     fwd_bwd(lambda: ref.dec.neck2seq(z), gx, ps(ref.dec.neck2seq) + [z])),
        'Seq2Vec (the same Linear)': (1, fwd_bwd(lambda: ours.decoder.seq2vec(flat), gvec, ps(ours.decoder.seq2vec) + [flat]),
                                      fwd_bwd(lambda: ref.dec.seq2vec(flat), gvec, ps(ref.dec.seq2vec) + [flat])),
    }
    opts = {}
    for k, m in models.items():  # the optimizer step alone, on copies of the parameters with fixed random gradients
        copies = [p_.detach().clone().requires_grad_() for p_ in m.parameters()]
        for p_ in copies: p_.grad = torch.randn_like(p_) * 1e-3
        opts[k] = torch.optim.Adam(copies, lr=1e-4, **adam_kw)
    parts['Adam step'] = (1, opts['project'].step, opts['report listing'].step)
    fns = {}
    for name, (n, fo, fr) in parts.items():
        fns[(name, 'project')], fns[(name, 'report listing')] = fo, fr
    wall, cpu = timed_rounds({k: (lambda f=f: [f() for _ in range(reps)]) for k, f in fns.items()}, rounds, 1, 2, device)
    use = cpu if device.type == 'cpu' else wall
    return {name: (n, *(n * 1e3 / (reps * statistics.median(use[(name, k)])) for k in ('project', 'report listing')))
            for name, (n, _, _) in parts.items()}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--preset', default='small', help="TransformerAE preset whose config both models use")
    p.add_argument('--d_model', type=int); p.add_argument('--n_layers', type=int); p.add_argument('--heads', type=int)
    p.add_argument('--d_ff', type=int); p.add_argument('--neck', type=int)
    p.add_argument('--batch', type=int, default=36, help="the report's batch size")
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--rounds', type=int, default=5); p.add_argument('--steps', type=int, default=10, help='steps per round')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--bf16', action='store_true', help='bf16 autocast for both models')
    p.add_argument('--project_only', action='store_true', help='time only the project model (e.g. the full report preset on a GPU)')
    p.add_argument('--default_adam', action='store_true', help="torch's default Adam for both (on a CPU a per-tensor loop) instead of fused Adam")
    p.add_argument('--out', help='also write the results as JSON here')
    p.add_argument('--breakdown', action='store_true', help='also time each part of both models alone and print where a step spends its time')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    over = {k: getattr(a, k) for k in ('d_model', 'n_layers', 'heads', 'd_ff', 'neck') if getattr(a, k) is not None}
    cfg = transformer_preset(a.preset, **over)
    if cfg.tokenizer != 'chunk' or cfg.mode != 'merge' or cfg.shared_encoder or cfg.fusion != 'concat':
        sys.exit("the reference implements the report's model only: chunk tokenizer, two encoders, concat fusion")

    with torch.device('meta'):  # the two implementations have the same parameters, at the report size too
        ours_r, ref_r = TransformerAE.from_preset('report'), ReportTransformerAE()
        assert n_params(ours_r) == n_params(ref_r) == 210_546_336, (n_params(ours_r), n_params(ref_r))
    torch.manual_seed(0)
    models = {'project': TransformerAE(cfg).to(dev)}
    if not a.project_only:
        models['report listing'] = ReportTransformerAE(cfg.d_model, cfg.n_layers, cfg.heads, cfg.d_ff, cfg.neck, cfg.dropout, cfg.max_seq_len, dev).to(dev)
        assert n_params(models['project']) == n_params(models['report listing'])
    batch = tuple(torch.randn(a.batch, cfg.n_params, device=dev) for _ in range(3))
    steps = {}
    for k, m in models.items():
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-4, **({} if a.default_adam else {'fused': True}))
        steps[k] = make_step(m, opt, batch, a.bf16, dev)
    wall, cpu = timed_rounds(steps, a.rounds, a.steps, a.warmup, dev)
    # On a CPU with one thread, steps per CPU-second measure the work itself, unaffected by other processes sharing
    # the cores; on a GPU (or with several threads) wall-clock steps/s is the measure.
    use_cpu = dev.type == 'cpu' and a.threads == 1
    rates = cpu if use_cpu else wall
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}

    conf = {f.name: getattr(cfg, f.name) for f in cfg.__dataclass_fields__.values() if f.name in ('d_model', 'n_layers', 'heads', 'd_ff', 'neck', 'dropout', 'tokenizer')}
    dev_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{platform.processor() or platform.machine()} CPU, {a.threads} thread(s) of {os.cpu_count()} cores'
    print(f"command: python benchmarks/transformer_speed.py {' '.join(sys.argv[1:])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}, torch {torch.__version__}, device: {dev_name}")
    print(f"config: preset {a.preset!r} {conf}, batch {a.batch}, {'bf16 autocast' if a.bf16 else 'float32'}, "
          f"Adam ({'torch default' if a.default_adam else 'fused'}), {n_params(models['project']):,} parameters each")
    unit = 'steps per CPU-second (process time, 1 thread)' if use_cpu else 'steps/s (wall clock)'
    print(f"timing: {a.warmup} warm-up steps, then {a.rounds} interleaved rounds of {a.steps} steps; median {unit}")
    for k in models:
        print(f"  {k:15s} {med[k]:8.2f} steps/s   (rounds: {', '.join(f'{r:.2f}' for r in rates[k])}; wall-clock median {med_wall[k]:.2f})")
    if not a.project_only:
        ratio, ratio_wall = med['project'] / med['report listing'], med_wall['project'] / med_wall['report listing']
        print(f"ratio project / report listing: {ratio:.2f}x" + (f" (wall clock: {ratio_wall:.2f}x)" if use_cpu else ''))
    parts = None
    if a.breakdown and not a.project_only:
        parts = breakdown(cfg, models, a.batch, a.rounds, a.steps, dev, {} if a.default_adam else {'fused': True})
        unit_ms = 'ms of CPU time' if use_cpu else 'ms wall clock'
        print(f"breakdown: each part timed alone (forward + backward, {a.steps} repeats, median of {a.rounds} interleaved rounds), {unit_ms} per training step")
        print(f"  {'part':32s} {'x/step':>6s} {'project':>9s} {'listing':>9s}")
        for name, (n, po, pr) in parts.items():
            print(f"  {name:32s} {n:6d} {po:9.1f} {pr:9.1f}")
        step_ms = {k: 1e3 / med[k] for k in med}
        print(f"  {'whole training step (measured)':32s} {'':6s} {step_ms['project']:9.1f} {step_ms['report listing']:9.1f}")
        fixed = sum(parts[k][1] for k in ('encoder layer (whole)', 'Seq2Vec (the same Linear)', 'Adam step'))
        print(f"  project's encoder layers + Seq2Vec + Adam: {fixed:.1f} ms = {fixed / step_ms['project']:.0%} of its step; were everything else free, "
              f"the ratio could be at most {step_ms['report listing'] / fixed:.2f}x")
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(dict(argv=sys.argv[1:], config=conf, batch=a.batch, bf16=a.bf16, device=dev_name, unit=unit, steps_per_s=med, rounds=rates, wall_steps_per_s=med_wall,
                           ratio=med['project'] / med['report listing'] if not a.project_only else None,
                           breakdown_ms={k: dict(per_step=n, project=po, listing=pr) for k, (n, po, pr) in parts.items()} if parts else None), f, indent=1)

if __name__ == '__main__': main()
