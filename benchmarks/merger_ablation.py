"""Which levers make the merger merge CNNs it has never seen: one training run per (setting, seed), scored on held-out
target combinations of the training zoo's CNNs and of a fresh zoo (same θ0, CNNs grown on another replica split).

    python benchmarks/merger_ablation.py --zoo runs/zoo-quick-r3 --fresh runs/zoo-quick-fresh --setting all --seed 0

Each (setting, seed) writes nbs/results/ablation/SETTING-seedS.json (atomically) and is skipped when that file exists; an
interrupted training resumes from its last.pt. `--table` joins the files into nbs/results/ablation/table.{csv,md}.
"""
import argparse, json, math, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from weight_merging.zoo import load_zoo, zoo_data, atomic_write, run_provenance, score_cnns
from weight_merging.scenarios import ScenarioConfig, make_scenario
from weight_merging.train import merger_preset, train_merger, load_merger, predict, triple_info, combination_triples
from weight_merging.eval import Ensemble, cluster_mean_ci

FOLDS, FOLD = 4, 0  # the held-out combinations: fold 0 of 4 over the quick zoo's 22 disjoint targets (6 combinations)
BASE = dict(losses='layerwise_mse=1', distill=0., preset='small')  # explicit, whatever the training preset's default
SETTINGS = {  # name -> (replicas used for training, MergerConfig overrides)
    'baseline': ((0,), {}),                                          # one CNN per class subset, weight-space loss only
    'replicas3': ((0, 1, 2), {}),                                    # three replicas per class subset
    'distill': ((0,), dict(distill=1.)),                             # the functional term, one replica
    'replicas2+distill': ((0, 1), dict(distill=1.)),
    'replicas3+distill': ((0, 1, 2), dict(distill=1.)),              # both
    'replicas3+residual': ((0, 1, 2), dict(model=dict(residual=True))),
    'replicas3+distill+residual': ((0, 1, 2), dict(distill=1., model=dict(residual=True))),
    'replicas3+distill+dropout': ((0, 1, 2), dict(distill=1., model=dict(dropout=0.07))),   # the report's dropout
    'replicas3+distill+perm': ((0, 1, 2), dict(distill=1., permutations=16)),              # a bank of 16 triple permutations
    'distill+dropout': ((0,), dict(distill=1., model=dict(dropout=0.07))),                  # the report's dropout, one replica
    'distill+perm': ((0,), dict(distill=1., permutations=16)),                              # triple permutations from a bank of 16, one replica
    'distill+neuron': ((0,), dict(distill=1., model=dict(tokenizer='neuron'))),             # one token per neuron instead of the report's chunks
    'distill+wider': ((0,), dict(distill=1., model=dict(d_model=128, n_layers=3, d_ff=256, neck=128))),  # capacity: twice the width, 3 layers
    # several θ0: trained on a zoo grown from init seeds 0-5 (--zoo runs/zoo-quick-s6), fresh = CNNs of unseen init seeds 6, 7
    'seeds6+distill': ((0,), dict(distill=1.)),
    'seeds6+distill+residual': ((0,), dict(distill=1., model=dict(residual=True))),
    'seeds6+distill+1800steps': ((0,), dict(distill=1., steps=1800)),  # three times the steps: is six θ0 a matter of training time?
}
STEPS = 600  # optimizer steps per run (the quick preset's 60 epochs of one replica), whatever the number of replicas


def config(name, seed, zoo, epochs=None):
    reps, over = SETTINGS[name]
    over = {**BASE, **over}
    steps = over.pop('steps', STEPS)
    sc = dict(subscenario='type1_m0', folds=FOLDS, fold=FOLD, replicas=reps)
    cfg = merger_preset('quick', zoo=str(zoo), scenario=sc, seed=seed, wandb='disabled', diag_every=1000, **over)
    if epochs is None:  # equal optimizer steps for every setting
        n = len(make_scenario(load_zoo(zoo), ScenarioConfig(**sc)).triples('train')) * 2
        epochs = max(1, round(steps / math.ceil(n / cfg.batch_size)))
    cfg.epochs = epochs
    return cfg


def ensemble_accuracy(zoo, triples, data, split='test'):
    "Accuracy (%) of the parents' output ensemble (mean softmax) on C3's `split` images, per triple (the evaluation's scorer)."
    info = triple_info(zoo, torch.as_tensor(triples))
    out = torch.zeros(len(triples))
    for a in sorted(set(info['activation'])):
        sel = [i for i, x in enumerate(info['activation']) if x == a]
        ens = Ensemble(torch.stack([zoo.vectors(triples[sel, 0]), zoo.vectors(triples[sel, 1])], 1), a)
        out[sel] = torch.as_tensor(score_cnns(ens, a, data, [info['c3'][i] for i in sel], split).acc.to_numpy().copy(), dtype=torch.float)
    return out


def score(model, std, zoo, triples, data):
    "Per triple: target combination, merger, true C3 and ensemble accuracy (%) on C3's test images."
    info = triple_info(zoo, torch.as_tensor(triples))
    pred = predict(model, std, zoo.vectors(triples[:, 0]), zoo.vectors(triples[:, 1]))
    with torch.no_grad():
        acc = lambda v: score_cnns(v, info['activation'], data, info['c3'], 'test').acc.to_numpy()
        return pd.DataFrame(dict(c3=[''.join(map(str, c)) for c in info['c3']], merger=acc(pred), true_c3=acc(zoo.vectors(triples[:, 2])),
                                 ensemble=ensemble_accuracy(zoo, triples, data).numpy(), average=acc((zoo.vectors(triples[:, 0]) + zoo.vectors(triples[:, 1])) / 2)))


def by_combination(df):
    "Mean over target combinations of the per-combination means, with a Student-t 95 % interval over combinations (`cluster_mean_ci`)."
    out = {'n_triples': len(df), 'n_comb': int(df.c3.nunique())}
    for c in ('merger', 'true_c3', 'ensemble', 'average'):
        m, lo, hi, _ = cluster_mean_ci(df[c], df.c3)
        out[c] = [round(float(m), 2), round(float(lo), 2), round(float(hi), 2)]
    g = df.groupby('c3').mean(numeric_only=True)
    out['ratio_to_true'] = round(float(g.merger.mean() / g.true_c3.mean()), 4)
    out['beats_ensemble'] = round(float((df.merger > df.ensemble).mean()), 4)
    return out


def unseen_theta0(model, std, unseen_dir, test_c3):
    "Held-out combinations on a zoo of CNNs grown from init seeds (θ0) the merger never saw."
    z = load_zoo(unseen_dir, mmap=False)
    held = combination_triples(z, dict(subscenario='type1_m0'), test_c3)
    return dict(zoo=str(unseen_dir), seeds=sorted(int(s) for s in set(z.meta.seed)), **by_combination(score(model, std, z, held, zoo_data(z))))


def run(name, seed, zoo_dir, fresh_dir, out_dir, res_dir, unseen_dir=None):
    res = Path(res_dir)/f'{name}-seed{seed}.json'
    if res.exists():
        r = json.loads(res.read_text())
        if unseen_dir and 'heldout_unseen_theta0' not in r:  # score a finished run on CNNs of unseen θ0 as well
            model, std, _ = load_merger(Path(out_dir)/name/f'seed{seed}')
            sc = make_scenario(load_zoo(r['config']['zoo']), ScenarioConfig(**r['config']['scenario']))
            r['heldout_unseen_theta0'] = unseen_theta0(model, std, unseen_dir, set(sc.table.c3[sc.table.split == 'test']))
            atomic_write(res, lambda p: p.write_text(json.dumps(r, indent=1, default=str)))
            print(f"{name} seed {seed}: unseen θ0 {r['heldout_unseen_theta0']['merger']} (true {r['heldout_unseen_theta0']['true_c3'][0]})", flush=True)
        else: print(f'{res} exists: skipped')
        return
    torch.set_num_threads(1)
    cfg = config(name, seed, zoo_dir)
    run_dir = Path(out_dir)/name/f'seed{seed}'
    t = time.time()
    done = run_dir/'summary.json'
    s = json.loads(done.read_text()) if done.exists() and json.loads(done.read_text())['epochs_run'] == cfg.epochs else None
    s = s or train_merger(cfg, run_dir, resume=True, progress=False)  # (a finished run keeps its summary and its training time)
    model, std, _ = load_merger(run_dir)
    while not (Path(fresh_dir)/'zoo'/'weights.npy').exists() and not (Path(fresh_dir)/'weights.npy').exists():
        print(f'waiting for the fresh zoo {fresh_dir}', flush=True); time.sleep(30)
    zoo, fresh = load_zoo(zoo_dir, mmap=False), load_zoo(fresh_dir, mmap=False)
    data = zoo_data(zoo)
    sc = make_scenario(zoo, ScenarioConfig(**cfg.scenario))
    test_c3 = set(sc.table.c3[sc.table.split == 'test'])
    own = sc.table[(sc.table.split == 'test') & (sc.table.replica == 0)][['row1', 'row2', 'row3']].to_numpy()
    held = combination_triples(fresh, dict(subscenario='type1_m0'), test_c3)
    out = dict(setting=name, seed=seed, replicas=list(SETTINGS[name][0]), overrides=SETTINGS[name][1], epochs=cfg.epochs,
               train_triples=s['train_triples'], best_epoch=s['best_epoch'], train_seconds=round(s['seconds'], 1),
               seconds_per_epoch=round(s['seconds'] / max(1, s['epochs_run']), 2), val_cnn_accuracy=s['val_cnn_accuracy'],
               heldout_training_zoo=by_combination(score(model, std, zoo, own, data)),
               heldout_fresh=by_combination(score(model, std, fresh, held, data)),
               **({'heldout_unseen_theta0': unseen_theta0(model, std, unseen_dir, test_c3)} if unseen_dir else {}),
               command=' '.join(['python benchmarks/merger_ablation.py', *sys.argv[1:]]), config=cfg.to_dict(), **run_provenance())
    atomic_write(res, lambda p: p.write_text(json.dumps(out, indent=1, default=str)))
    print(f"{name} seed {seed}: fresh held-out {out['heldout_fresh']['merger']} (true {out['heldout_fresh']['true_c3'][0]}, "
          f"ensemble {out['heldout_fresh']['ensemble'][0]}), training-zoo held-out {out['heldout_training_zoo']['merger'][0]}, {time.time() - t:.0f} s", flush=True)


def table(res_dir):
    rows = []
    for p in sorted(Path(res_dir).glob('*-seed*.json')):
        r = json.loads(p.read_text())
        rows.append(dict(setting=r['setting'], seed=r['seed'], replicas=len(r['replicas']), epochs=r['epochs'], train_s=r['train_seconds'],
                         s_per_epoch=r['seconds_per_epoch'], fresh=r['heldout_fresh']['merger'][0], fresh_ratio=r['heldout_fresh']['ratio_to_true'],
                         fresh_beats_ens=r['heldout_fresh']['beats_ensemble'], fresh_true=r['heldout_fresh']['true_c3'][0],
                         fresh_ens=r['heldout_fresh']['ensemble'][0], own=r['heldout_training_zoo']['merger'][0],
                         own_true=r['heldout_training_zoo']['true_c3'][0], n_comb=r['heldout_fresh']['n_comb'],
                         unseen=r.get('heldout_unseen_theta0', {}).get('merger', [np.nan])[0],
                         unseen_ratio=r.get('heldout_unseen_theta0', {}).get('ratio_to_true', np.nan),
                         unseen_beats_ens=r.get('heldout_unseen_theta0', {}).get('beats_ensemble', np.nan),
                         unseen_true=r.get('heldout_unseen_theta0', {}).get('true_c3', [np.nan])[0],
                         **{f'{k}_ci_hw': (lambda v: (v[2] - v[1]) / 2)(r.get(key, {}).get('merger', [np.nan] * 3))
                            for k, key in (('fresh', 'heldout_fresh'), ('own', 'heldout_training_zoo'), ('unseen', 'heldout_unseen_theta0'))}))
    df = pd.DataFrame(rows)
    agg = df.groupby('setting').agg(seeds=('seed', 'count'), replicas=('replicas', 'first'), epochs=('epochs', 'first'),
                                    train_s=('train_s', 'mean'), fresh=('fresh', 'mean'), fresh_sd=('fresh', 'std'),
                                    fresh_ratio=('fresh_ratio', 'mean'), fresh_beats_ens=('fresh_beats_ens', 'mean'),
                                    fresh_true=('fresh_true', 'mean'), fresh_ens=('fresh_ens', 'mean'), own=('own', 'mean'),
                                    own_sd=('own', 'std'), own_true=('own_true', 'mean'), n_comb=('n_comb', 'first'),
                                    unseen=('unseen', 'mean'), unseen_sd=('unseen', 'std'), unseen_n=('unseen', 'count'),
                                    unseen_ratio=('unseen_ratio', 'mean'), unseen_beats_ens=('unseen_beats_ens', 'mean'),
                                    unseen_true=('unseen_true', 'mean'), fresh_ci_hw=('fresh_ci_hw', 'mean'), own_ci_hw=('own_ci_hw', 'mean'),
                                    unseen_ci_hw=('unseen_ci_hw', 'mean')).round(3)  # *_ci_hw: half-width of a seed's 95 % interval over combinations, mean over seeds
    agg = agg.sort_values('fresh', ascending=False)
    atomic_write(Path(res_dir)/'table.csv', lambda p: agg.to_csv(p))
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(agg) + 2.4))
    y = np.arange(len(agg))[::-1]
    for k, (which, col, mk) in enumerate((('fresh CNNs', 'fresh', 'o'), ('training-zoo CNNs', 'own', 's'))):
        ax.errorbar(agg[col], y + (0.15 if k == 0 else -0.15), xerr=agg[f'{col}_sd'].fillna(0), fmt=mk, capsize=3, label=f'merger, {which} (mean ± sd over seeds)')
        for j, (name, g) in enumerate(df.groupby('setting')):
            yy = y[list(agg.index).index(name)] + (0.15 if k == 0 else -0.15)
            ax.scatter(g[col], [yy] * len(g), s=8, color='k', alpha=0.5, zorder=3)
    ax.axvline(agg.fresh_true.mean(), color='g', ls='--', lw=1, label='true C3 models (fresh)')
    ax.axvline(agg.fresh_ens.mean(), color='r', ls=':', lw=1, label="parents' ensemble (fresh)")
    ax.set_yticks(y); ax.set_yticklabels(agg.index, fontsize=8); ax.set_xlabel('ID accuracy on C3, held-out combinations (%)')
    ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.22), ncol=2); ax.set_title('Merger levers (fold 0: 6 held-out combinations)')
    fig.tight_layout(); fig.savefig(Path(res_dir)/'ablation.png', dpi=110); plt.close(fig)
    atomic_write(Path(res_dir)/'per_seed.csv', lambda p: df.to_csv(p, index=False))
    print(agg.to_string())


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--zoo', default='runs/zoo-quick-r3'); ap.add_argument('--fresh', default='runs/zoo-quick-fresh')
    ap.add_argument('--setting', default='all', help=f"comma-separated settings of {', '.join(SETTINGS)}, or all")
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--out', default='runs/ablation')
    ap.add_argument('--results', default='nbs/results/ablation'); ap.add_argument('--table', action='store_true')
    ap.add_argument('--unseen', default=None, help='zoo of CNNs grown from init seeds the merger never saw: also score there')
    a = ap.parse_args()
    if a.table: table(a.results); sys.exit(0)
    names = list(SETTINGS) if a.setting == 'all' else a.setting.split(',')
    if bad := [n for n in names if n not in SETTINGS]: sys.exit(f"unknown setting(s) {bad}; valid: {', '.join(SETTINGS)}, all")
    for n in names: run(n, a.seed, a.zoo, a.fresh, a.out, a.results, a.unseen)
