"""How far can a merge that only mixes the parents go? The ceiling of the mixing mergers, measured with data.

A mixing merger (03_transformer: `unit_mix`, `pair_mix`, the local rule) writes
θ̂ = θ0 + a ⊙ τ1 + b ⊙ τ2 with one pair (a, b) per group of weights, τk = θk − θ0. Whatever it reads, its output lies
in that family. Here the coefficients of every held-out triple are *fitted on C3's training images* (cross-entropy,
Adam, starting from task arithmetic a = b = 1): an oracle no data-free merger can beat, since it sees the data the
merger may not. Its accuracy on C3's test images is the ceiling of each family:

* layer — two coefficients per parameter tensor (10 groups): task arithmetic with a λ per layer and parent,
* head  — two per output unit (a digit's row of fc2 and its bias) and two for all other weights (11 groups),
* unit  — two coefficients per unit (48 groups; `mix_groups('unit')`),
* pair  — two per pair of connected units, a kernel (408 groups; `mix_groups('pair')`),
* param — two per weight (2464 groups): the ceiling of any element-wise merge rule (task arithmetic with per-weight λ,
          TIES, DARE, ...). It is not a free CNN: a weight that neither parent moved from θ0 cannot move.

Scored on the held-out combinations (fold 0 of 4 of the quick study) of the fresh zoo and of any --extra zoo, beside
task arithmetic (λ = 1) and the true C3 models on the same triples:

    python benchmarks/mix_ceiling.py --run runs/quick --extra theta0=runs/zoo-quick-unseen --threads 1

Each (zoo, family) is written to nbs/results/ceiling/ceiling.json as it finishes (atomically) and skipped when there.
"""
import argparse, json, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from weight_merging.zoo import load_zoo, zoo_data, atomic_write, run_provenance, cnn_forward, score_cnns, N_PARAMS
from weight_merging.eval import sample_rows, cluster_mean_ci
from weight_merging.tokenizer import param_layers
from weight_merging.study import STUDY_PRESETS, fold_config, fold_triples
from weight_merging.train import zoo_theta0
from weight_merging.transformer import mix_groups

OUT = Path('nbs/results/ceiling')
def _head_groups():
    "One group per output unit (fc2's rows and biases: 10) and one for every other weight: a λ per digit's head and one for the body."
    u = mix_groups('unit'); head = u >= int(u.max()) - 9
    return torch.where(head, u - int(u.max()) + 10, torch.zeros_like(u))


FAMILIES = {'layer': param_layers,  # one group per parameter tensor (10): task arithmetic with a λ per layer and parent
            'head': _head_groups, 'unit': lambda: mix_groups('unit'), 'pair': lambda: mix_groups('pair'),
            'param': lambda: torch.arange(N_PARAMS)}


def fit_mix(t0, t1, t2, group, acts, data, c3, steps=300, batch=128, lr=0.05, seed=0):
    "Per-group coefficients (M, 2, G) fitted on each triple's C3 training images; returns the mixed CNNs (M, 2464) and the final loss."
    g = torch.Generator().manual_seed(seed)
    G, M = int(group.max()) + 1, len(t0)
    coef = torch.ones(M, 2, G, requires_grad=True)
    opt = torch.optim.Adam([coef], lr=lr)
    pools = [data.indices('train', c) for c in c3]
    mix = lambda c: t0 + c[:, 0][:, group] * t1 + c[:, 1][:, group] * t2
    by_act = {}
    for i, a in enumerate(acts): by_act.setdefault(a, []).append(i)
    for step in range(steps):
        idx = torch.stack([p[torch.randint(len(p), (batch,), generator=g)] for p in pools])  # (M, batch)
        w, loss = mix(coef), 0.
        for a, ii in by_act.items():
            logits = cnn_forward(w[ii], data.x[idx[ii]], a)  # (m, batch, 10)
            loss = loss + F.cross_entropy(logits.flatten(0, 1), data.y[idx[ii]].flatten(), reduction='sum')
        opt.zero_grad(); (loss / (M * batch)).backward(); opt.step()
    return mix(coef).detach(), float(loss.detach()) / (M * batch)


def main(a):
    run = Path(a.run); res_f = OUT/'ceiling.json'
    res = json.loads(res_f.read_text()) if res_f.exists() else dict(results={})
    P = dict(STUDY_PRESETS['quick'])
    cfg = fold_config(P, run/'zoo', 0, 0)
    own = load_zoo(run/'zoo', mmap=False)
    zoos = {'fresh': run/'zoo-fresh', **dict(kv.split('=', 1) for kv in a.extra.split(',') if kv)}
    for name, zp in zoos.items():
        z = load_zoo(zp, mmap=False); tr = fold_triples(own, z, cfg)['fresh']
        tr = sample_rows(tr, a.max_triples, a.seed)
        data = zoo_data(z); T0, ix = zoo_theta0(z)
        W = torch.from_numpy(np.asarray(z.weights, dtype=np.float32))
        t0 = T0[ix[tr[:, 2]]]; t1, t2 = W[tr[:, 0]] - t0, W[tr[:, 1]] - t0
        acts = [z.meta.activation.iat[r] for r in tr[:, 2]]; c3 = [z.classes(r) for r in tr[:, 2]]
        score = lambda w: score_cnns(w, acts, data, c3, 'test').acc.to_numpy()
        for fam in ['true C3', 'task arithmetic'] + a.families.split(','):
            key = f'{name}|{fam}'
            if key in res['results']: print(key, 'done'); continue
            t = time.time(); extra = {}
            if fam == 'true C3': acc = score(W[tr[:, 2]])
            elif fam == 'task arithmetic': acc = score(t0 + t1 + t2)
            else:
                if fam not in FAMILIES: sys.exit(f"unknown family {fam!r}; valid: {', '.join(FAMILIES)}")
                w, loss = fit_mix(t0, t1, t2, FAMILIES[fam](), acts, data, c3, a.steps, a.batch, a.lr, a.seed)
                acc = score(w); extra = dict(train_loss=round(loss, 4), steps=a.steps, batch=a.batch, lr=a.lr,
                                             train_acc=round(float(np.mean(score_cnns(w, acts, data, c3, 'train', max_per_class=200).acc)), 3))
            m, lo, hi, n_comb = cluster_mean_ci(acc, [str(c) for c in c3])  # the interval is over class combinations
            res['results'][key] = dict(zoo=name, family=fam, mean=round(m, 3), ci_hw=round((hi - lo) / 2, 3), n_comb=n_comb, n=int(len(tr)), seconds=round(time.time() - t, 1), **extra)
            res.update(command=' '.join(sys.argv), seed=a.seed, fold=0, zoos={k: str(v) for k, v in zoos.items()}, **run_provenance())
            OUT.mkdir(parents=True, exist_ok=True)
            atomic_write(res_f, lambda p: p.write_text(json.dumps(res, indent=1)))
            print(key, res['results'][key], flush=True)
    tab = pd.DataFrame(res['results'].values()).pivot(index='family', columns='zoo', values='mean')
    print(tab.round(1).to_string())


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--run', default='runs/quick', help='folder holding zoo/ and zoo-fresh/')
    ap.add_argument('--extra', default='', help='NAME=ZOO,... further zoos whose held-out triples to score (e.g. theta0=ZOO of unseen init seeds)')
    ap.add_argument('--families', default='layer,head,unit,pair,param')
    ap.add_argument('--steps', type=int, default=300); ap.add_argument('--batch', type=int, default=128); ap.add_argument('--lr', type=float, default=0.05)
    ap.add_argument('--max_triples', type=int, default=64, help='a seeded sample of at most this many held-out triples per zoo')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    main(a)
