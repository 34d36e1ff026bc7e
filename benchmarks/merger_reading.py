"""Merging or recalling? One training run per (setting, seed) of the default study fold, scored on held-out target
combinations of three kinds of CNNs: the training zoo's, a fresh zoo's (same θ0, other training images) and a shifted
zoo's (same θ0 and classes, every image rotated by 90°: a domain no merger saw). Besides accuracy it records what tells
a merger that reads its parents from one that recalls a classifier: the collapse of its CNNs over triples and their
accuracy on the digits outside C3 (OOD), both against the true C3 models.

    wm-zoo --preset quick --out runs/quick/zoo                         # (or a finished wm-run --preset quick folder)
    wm-zoo --preset quick --replicas 100 --out runs/quick/zoo-fresh
    wm-zoo --preset quick --replicas 100 --domain rot90 --out runs/quick/zoo-shifted
    wm-zoo --preset quick --replicas 101 --out runs/quick/zoo-select   # (the +select settings' model selection)
    python benchmarks/merger_reading.py --run runs/quick --setting all --seed 0 --threads 1
    python benchmarks/merger_reading.py --table

Settings ending in `+domains` train across image domains: the training zoo joined with zoos of the same θ0 and digits
seen through the `domains` study preset's TRAIN_DOMAINS (rotations by 45°-multiples other than 90° and 270°, a mirror,
an inversion), built first with

    for d in rot45 rot135 rot180 rot225 rot315 hflip invert; do wm-zoo --preset quick --domain $d --out runs/domains/zoo-$d; done
    python benchmarks/merger_reading.py --run runs/quick --setting weights+domains --domains runs/domains \
        --extra vflip=runs/domains/test-vflip,rot30+invert=runs/domains/test-rot30+invert

Settings ending in `+seeds6` train across six θ0: the training zoo (init seed 0) joined with a zoo of init seeds 1-5 (same
classes and images; triples stay within one θ0), for as many epochs as the `+domains` settings:

    wm-zoo --preset quick --seeds 1,2,3,4,5 --out runs/theta0/zoo-seeds1-5
    python benchmarks/merger_reading.py --run runs/quick --setting task_pair_rule+seeds6 --seeds_zoo runs/theta0/zoo-seeds1-5 \
        --extra theta0=runs/zoo-quick-unseen

`--extra NAME=ZOO,...` also scores fresh zoos of other unseen domains (e.g. `wm-zoo --preset quick --replicas 100
--domain vflip`) or of unseen θ0 (`theta0=ZOO` of `wm-zoo --preset quick --seeds 6,7`); with `--rescore`, finished settings
are scored on the extras they lack (a run folder that is gone is trained again from the recorded configuration and seed). The rotated-by-90° shifted zoo and the extras are domains no merger trained on.

Each (setting, seed) writes nbs/results/reading/SETTING-seedS.json atomically and is skipped when that file exists; an
interrupted training resumes from its last.pt. `--table` joins the files into nbs/results/reading/table.csv.
"""
import argparse, json, sys, time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from weight_merging.zoo import load_zoo, zoo_data, atomic_write, run_provenance
from weight_merging.study import STUDY_PRESETS, TRAIN_DOMAINS, fold_config, fold_triples
from weight_merging.train import train_merger
from weight_merging.report import baseline_methods, merger_from_run
from weight_merging.eval import evaluate

OUT = Path('nbs/results/reading')
EPOCHS = 40  # the quick study's training length
SETTINGS = {  # name -> MergerConfig overrides on top of the quick study's training configuration (medium transformer, distill=1)
    'weights': {},                                                                    # the decoder writes all 2464 weights (the report's design)
    'unit_mix': dict(model=dict(output='unit_mix'), losses='layerwise_mse=0.1'),      # two coefficients per CNN unit mix the parents
    'pair_mix': dict(model=dict(output='pair_mix'), losses='layerwise_mse=0.1'),      # two per (unit, input channel) pair
    'pair_mix_bounded': dict(model=dict(output='pair_mix', mix_bounded=True), losses='layerwise_mse=0.1'),  # ... each in (0, 1)
    # task vectors (03_transformer's `task_vectors`): the encoders read θ − θ0 and the output is written around the parents' θ0
    'task_weights': dict(model=dict(task_vectors=True)),                                                    # θ0 + decode(z)
    'task_unit_mix': dict(model=dict(output='unit_mix', task_vectors=True), losses='layerwise_mse=0.1'),  # θ0 + a⊙τ1 + b⊙τ2 per unit
    'task_pair_mix': dict(model=dict(output='pair_mix', task_vectors=True), losses='layerwise_mse=0.1'),  # ... per kernel (starts as task arithmetic)
    # model selection on fresh CNNs: the best epoch chosen on RUN/zoo-select (a replica zoo, e.g. replica 101), not on the training zoo's validation triples
    'weights+select': dict(_select=True),
    'task_pair_mix+select': dict(model=dict(output='pair_mix', task_vectors=True), losses='layerwise_mse=0.1', _select=True),
    # a merge rule that cannot depend on the frame (03_transformer's `mix_features`): per-kernel coefficients from each kernel's own statistics
    'task_pair_rule': dict(model=dict(output='pair_mix', task_vectors=True, mix_features='local'), losses='layerwise_mse=0.1', epochs=120),  # one MLP shared by all kernels, no encoders; still improving at 40 epochs
    'task_pair_both': dict(model=dict(output='pair_mix', task_vectors=True, mix_features='both'), losses='layerwise_mse=0.1', epochs=120),  # ... reading the latent code too (not equivariant)
}
DOMAIN_EPOCHS = STUDY_PRESETS['domains']['train_overrides']['epochs']  # 12: 8 zoos' triples an epoch, about 2.4x the steps of EPOCHS on one zoo
for _k in list(SETTINGS): SETTINGS[f'{_k}+domains'] = {**SETTINGS[_k], 'epochs': DOMAIN_EPOCHS, '_domains': TRAIN_DOMAINS}
for _k in ('weights', 'task_pair_mix', 'task_pair_rule'):  # across six θ0: the training zoo (init seed 0) joined with --seeds_zoo (init seeds 1-5),
    SETTINGS[f'{_k}+seeds6'] = {**SETTINGS[_k], 'epochs': round(0.3 * SETTINGS[_k].get('epochs', EPOCHS)), '_seeds': True}  # 1.8x the one-zoo steps
METHODS = ('merger', 'ground truth C3', 'ensemble', 'weight averaging', 'task arithmetic', 'TIES')


def config(name, seed, run, domains_dir=None, seeds_zoo=None):
    P = dict(STUDY_PRESETS['quick']); over = dict(P['train_overrides'])
    s = dict(SETTINGS[name]); model = s.pop('model', {}); doms = s.pop('_domains', ()); more_seeds = s.pop('_seeds', False)
    if s.pop('_select', False): s['select_zoo'] = str(Path(run)/'zoo-select')
    P['train_overrides'] = {**over, 'epochs': EPOCHS, **s, 'model': {**over.get('model', {}), **model}}
    cfg = fold_config(P, Path(run)/'zoo', 0, seed)
    if doms:
        if domains_dir is None: sys.exit(f"setting {name} trains across image domains: give --domains (the folder of zoo-DOMAIN zoos)")
        cfg = replace(cfg, zoo=','.join([cfg.zoo] + [str(Path(domains_dir)/f'zoo-{d}') for d in doms]))
    if more_seeds:
        if seeds_zoo is None: sys.exit(f"setting {name} trains across θ0: give --seeds_zoo (a zoo of other init seeds, e.g. wm-zoo --preset quick --seeds 1,2,3,4,5)")
        cfg = replace(cfg, zoo=f'{cfg.zoo},{seeds_zoo}')
    return cfg


def one(name, seed, run, shifted, work, domains_dir=None, extra=None, rescore=False, seeds_zoo=None):
    f = OUT/f'{name}-seed{seed}.json'
    if f.exists():
        old = json.loads(f.read_text()); missing = {k: z for k, z in (extra or {}).items() if k not in old['sets']}
        if not (rescore and missing): print(f'{f}: done'); return
        return add_sets(old, f, name, seed, run, work, domains_dir, missing, seeds_zoo)
    cfg = config(name, seed, run, domains_dir, seeds_zoo); mdir = Path(work)/f'{name}-seed{seed}'
    sj, norm = mdir/'summary.json', lambda d: json.loads(json.dumps(d))
    if sj.exists() and norm(json.loads(sj.read_text())['config']) == norm(cfg.to_dict()):  # trained to the end before: its own record of the time
        r = json.loads(sj.read_text()); train_s = r['seconds']
    else: t = time.time(); r = train_merger(cfg, mdir, resume=True, progress=False); train_s = time.time() - t
    zoos = {'own': load_zoo(Path(run)/'zoo', mmap=False), 'fresh': load_zoo(Path(run)/'zoo-fresh', mmap=False), 'shifted': load_zoo(shifted, mmap=False)}
    tr = fold_triples(zoos['own'], zoos['fresh'], replace(cfg, zoo=str(Path(run)/'zoo')), zoos['shifted'])
    for k, z in (extra or {}).items():  # fresh zoos of further unseen domains: their held-out triples, found as for the shifted zoo
        zoos[k] = load_zoo(z, mmap=False); tr[k] = fold_triples(zoos['own'], zoos[k], cfg)['fresh']
    ms = scored_methods(zoos['own'], tr['val'], mdir)
    res = dict(setting=name, seed=seed, epochs=cfg.epochs, train_s=round(train_s, 1), best_epoch=r['best_epoch'], val_cnn_accuracy=r['val_cnn_accuracy'],
               config=cfg.to_dict(), shifted_domain=zoos['shifted'].config['domain'], command=' '.join(sys.argv), sets={},
               domains={w: z.config.get('domain', 'none') for w, z in zoos.items()})
    t = time.time()
    for w, z in zoos.items(): res['sets'][w] = score_set(z, tr[w], ms)
    res['eval_s'] = round(time.time() - t, 1)
    res.update(run_provenance())
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write(f, lambda p: p.write_text(json.dumps(res, indent=1)))
    print(json.dumps({k: res[k] for k in ('setting', 'seed', 'train_s')}), {w: res['sets'][w]['merger|mean|id_acc'] for w in res['sets']})


def add_sets(res, f, name, seed, run, work, domains_dir, extra, seeds_zoo=None):
    "Score a finished (setting, seed) on further zoos; a run folder that is gone is trained again from the recorded configuration and seed."
    cfg = config(name, seed, run, domains_dir, seeds_zoo); mdir = Path(work)/f'{name}-seed{seed}'
    if not (mdir/'best.pt').exists() or json.loads((mdir/'config.json').read_text()) != json.loads(json.dumps(cfg.to_dict())):
        train_merger(cfg, mdir, resume=True, progress=False); res['retrained_for'] = sorted(extra)
    own = load_zoo(Path(run)/'zoo', mmap=False)
    tr = fold_triples(own, load_zoo(Path(run)/'zoo-fresh', mmap=False), replace(cfg, zoo=str(Path(run)/'zoo')))
    ms = scored_methods(own, tr['val'], mdir)
    for k, zp in extra.items():
        z = load_zoo(zp, mmap=False); t = fold_triples(own, z, cfg)['fresh']
        res['sets'][k] = score_set(z, t, ms); res.setdefault('domains', {})[k] = z.config.get('domain', 'none')
    res['rescore_command'] = ' '.join(sys.argv)
    atomic_write(f, lambda p: p.write_text(json.dumps(res, indent=1)))
    print(json.dumps({k: res[k] for k in ('setting', 'seed')}), {w: res['sets'][w]['merger|mean|id_acc'] for w in extra})


def scored_methods(own, val, mdir):
    "The true C3 model, the merger of run folder `mdir`, and the data-free baselines (tuned on the training zoo's validation triples `val`)."
    ms, _ = baseline_methods(own, val, zoo_data(own), data_methods=False, continual=())
    m = merger_from_run(mdir).method(); m.name = 'merger'
    return [ms[0], m] + ms[1:]


def score_set(z, triples, methods):
    "The merger's and the references' mean ID and OOD accuracy (with intervals) and collapse on `triples` of zoo `z`."
    e = evaluate(z, triples, methods, zoo_data(z), None, bootstrap=200)
    s = e.summary.set_index(['method', 'metric'])
    col = e.collapse.set_index('method')
    return dict(n=int(len(triples)), n_comb=int(e.triples.c3.nunique()),
                **{f'{mm}|{k}|{met}': round(float(s.loc[(mm, met), k]), 3) for mm in METHODS for met in ('id_acc', 'ood_acc') for k in ('mean', 'lo', 'hi')},
                **{f'{mm}|collapse': round(float(col.collapse[mm]), 4) for mm in METHODS if mm in col.index})


def table():
    rows = []
    for f in sorted(OUT.glob('*-seed*.json')):
        r = json.loads(f.read_text())
        row = dict(setting=r['setting'], seed=r['seed'], train_s=r['train_s'])
        for w, s in r['sets'].items():
            row[f'{w}'] = s['merger|mean|id_acc']; row[f'{w}_ci_hw'] = (s['merger|hi|id_acc'] - s['merger|lo|id_acc']) / 2
            row[f'{w}_true'] = s['ground truth C3|mean|id_acc']; row[f'{w}_ens'] = s['ensemble|mean|id_acc']; row[f'{w}_ta'] = s['task arithmetic|mean|id_acc']
            row[f'{w}_ood'] = s['merger|mean|ood_acc']; row[f'{w}_collapse'] = s['merger|collapse']; row[f'{w}_n_comb'] = s['n_comb']
        rows.append(row)
    per = pd.DataFrame(rows); per.to_csv(OUT/'per_seed.csv', index=False)
    g = per.groupby('setting', sort=False)
    tab = g.mean(numeric_only=True).drop(columns='seed')
    tab.insert(0, 'seeds', g.size())
    for w in [c for c in per.columns if f'{c}_true' in per.columns]: tab.insert(tab.columns.get_loc(w) + 1, f'{w}_sd', g[w].std())
    tab = tab.reindex([s for s in SETTINGS if s in tab.index]).round(3)
    tab.to_csv(OUT/'table.csv'); print(tab.to_string())
    plot(tab)


def plot(tab):
    "Bars: the merger of each setting on the three kinds of CNNs (mean over seeds, ± half the 95 % interval over combinations); lines: references."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    names = {'own': 'training-zoo CNNs', 'fresh': 'fresh CNNs', 'shifted': 'rotated 90°', 'vflip': 'mirrored (vflip)',
             'rot30+invert': 'rotated 30° + inverted', 'theta0': 'unseen θ0'}
    sets = [(w, names.get(w, w)) for w in names if w in tab.columns] + [(w, w) for w in tab.columns if f'{w}_true' in tab.columns and w not in names]
    fig, ax = plt.subplots(figsize=(4 + 1.6 * len(sets), 4)); w = 0.8 / len(tab); x = np.arange(len(sets))
    for k, (name, r) in enumerate(tab.iterrows()):
        ax.bar(x - 0.4 + w * (k + 0.5), [r[s] for s, _ in sets], w, yerr=[r[f'{s}_ci_hw'] for s, _ in sets], capsize=2, label=f'merger: {name}', hatch='//' if name.endswith('+domains') else '..' if name.endswith('+seeds6') else None)
    for key, style, lab in (('true', 'k-', 'true C3 model'), ('ens', 'k--', "parents' ensemble"), ('ta', 'k:', 'task arithmetic')):
        for i, (s, _) in enumerate(sets): ax.plot([i - 0.45, i + 0.45], [tab[f'{s}_{key}'].mean()] * 2, style, lw=1, label=lab if i == 0 else None)
    ax.set_xticks(x); ax.set_xticklabels([n for _, n in sets], fontsize=8); ax.set_ylim(0, 100); ax.set_ylabel('ID accuracy on C3 (%), held-out combinations')
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1)); fig.tight_layout(); fig.savefig(OUT/'reading.png', dpi=110); plt.close(fig)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--run', default='runs/quick', help='folder holding zoo/ and zoo-fresh/')
    ap.add_argument('--shifted', default=None, help='the shifted zoo (default: RUN/zoo-shifted)')
    ap.add_argument('--setting', default='all', help=f"one of {', '.join(SETTINGS)}, or all (those on one zoo)")
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--work', default='runs/reading', help='training run folders')
    ap.add_argument('--domains', default=None, help='folder of the zoo-DOMAIN zoos the +domains settings train on')
    ap.add_argument('--seeds_zoo', default=None, help='a zoo of other init seeds (same classes and images) the +seeds6 settings train on beside RUN/zoo')
    ap.add_argument('--extra', default='', help='NAME=ZOO,... fresh zoos of further unseen image domains to score')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--table', action='store_true', help='join the result files into table.csv')
    ap.add_argument('--rescore', action='store_true', help='score finished settings on the --extra zoos they lack (training a run folder again if it is gone)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.table: table(); sys.exit()
    names = [n for n in SETTINGS if not n.endswith(('+domains', '+seeds6'))] if a.setting == 'all' else a.setting.split(',')
    if bad := [n for n in names if n not in SETTINGS]: sys.exit(f"unknown settings {bad}; valid: {', '.join(SETTINGS)}")
    extra = dict(kv.split('=', 1) for kv in a.extra.split(',') if kv)
    for n in names: one(n, a.seed, a.run, a.shifted or Path(a.run)/'zoo-shifted', a.work, a.domains, extra, a.rescore, a.seeds_zoo)
