"""Time to tokenize a whole zoo with the project's tokenizers against a per-token Python loop like the report's
`EmbedderNeuronGroup.multilinear` (slice `v[:, i*80:(i+1)*80]` per token, pad the 16-wide ones, stack).
`ChunkTokenizer` copies its two groups of consecutive chunks as reshaped slices (`IndexTokenizer.runs`);
`NeuronTokenizer` gathers through one index. Reference lines: the generic gather on chunk tokens (what the chunk
tokenizer did before the copy route), and a plain copy of the output's size (the floor for any tokenizer).

Usage: python benchmarks/tokenize_speed.py [ZOO_PATH] [--rows N] [--repeats R] [--out FILE]
ZOO_PATH defaults to `zoo_quick` (a quick zoo built with `wm-zoo --preset quick --out zoo_quick`); if no zoo is
there, N (default 151, the quick zoo's size) random rows of the zoo's width are timed instead, and the output says so.
"""
import argparse, datetime, platform, time
from pathlib import Path

import torch
import torch.nn.functional as F

from weight_merging.zoo import N_PARAMS, load_zoo
from weight_merging.tokenizer import ChunkTokenizer, NeuronTokenizer


def loop_tokenize(v):
    "The report's per-token loop: 26 slices of 80, 24 slices of 16 (padded to 80), stacked."
    l = []
    for ndx in range(26): l.append(v[:, ndx * 80:ndx * 80 + 80])
    for ndx in range(24):
        s = 26 * 80 + ndx * 16
        l.append(F.pad(v[:, s:s + 16], (0, 64)))
    return torch.stack(l, dim=1)


def loop_tokenize_neuron(v, tk):
    "Per-token loop for neuron tokens: gather each token's positions, pad, stack."
    return torch.stack([F.pad(v[:, tk.index[i, :n]], (0, tk.token_dim - n)) for i, n in enumerate(tk.lengths)], dim=1)


def _rel(p):
    "`p` relative to the repository root if inside it (keeps machine paths out of the stored output)."
    p, root = Path(p).resolve(), Path(__file__).resolve().parents[1]
    return str(p.relative_to(root)) if p.is_relative_to(root) else p.name


def best_time(f, repeats):
    "Best wall time of `repeats` calls of f (after one warm-up call)."
    return best_times([f], repeats)[0]


def best_times(fs, repeats):
    """Best wall time of each function in `fs` over `repeats` rounds, the functions taking turns within each round
    (so that both sides of a comparison see the same machine load)."""
    for f in fs: f()
    ts = [[] for _ in fs]
    for _ in range(repeats):
        for f, t in zip(fs, ts):
            t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    return [min(t) for t in ts]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('zoo', nargs='?', default='zoo_quick', help='zoo folder or CSV (default: zoo_quick)')
    ap.add_argument('--rows', type=int, default=151, help='random rows to time when no zoo is found (default 151)')
    ap.add_argument('--repeats', type=int, default=20)
    ap.add_argument('--batch', type=int, default=36, help="mini-batch size for the batched timing (the report's 36)")
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=None, help='also write the output to this file')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lines = [f"command: python benchmarks/tokenize_speed.py {Path(a.zoo).name} --repeats {a.repeats} --batch {a.batch} --threads {a.threads}"
             + (f" --out {_rel(a.out)}" if a.out else ''),
             f"date: {datetime.datetime.now().isoformat(timespec='seconds')}  torch {torch.__version__}  threads {a.threads}  "
             f"python {platform.python_version()}  cpu {platform.machine()}"]
    try:
        zoo = load_zoo(a.zoo); w = zoo.vectors()
        src = f"zoo {Path(a.zoo).name} (preset {zoo.config.get('name', '?')!r}): {len(w)} rows"
    except (FileNotFoundError, OSError):
        w = torch.randn(a.rows, N_PARAMS, generator=torch.Generator().manual_seed(0))
        src = f"no zoo at {a.zoo!r}: {a.rows} random rows of {N_PARAMS} values (the quick zoo's size), generated"
    lines.append(f"data: {src}")
    ct, nt = ChunkTokenizer(), NeuronTokenizer()
    assert torch.equal(ct.tokenize(w), loop_tokenize(w)) and torch.equal(nt.tokenize(w), loop_tokenize_neuron(w, nt))
    modes = [('whole zoo in one call', [w]), (f'batches of {a.batch}', list(w.split(a.batch))), ('one row per call', list(w.split(1)))]
    lines.append(f"time to tokenize all {len(w)} rows (ms), best of {a.repeats} runs (tokenizer and loop taking turns); outputs checked identical to the loop's")
    lines.append(f"{'tokens':7s} {'calls':24s} {'tokenizer':>10s} {'per-token loop':>15s} {'speed-up':>9s}")
    assert ct.runs is not None and nt.runs is None  # chunk tokens take the copy route, neuron tokens the gather
    loop_all = {}
    for tname, fast, slow in (('chunk', ct.tokenize, loop_tokenize), ('neuron', nt.tokenize, lambda b: loop_tokenize_neuron(b, nt))):
        for mname, parts in modes:
            tf, ts = best_times([lambda: [fast(b) for b in parts], lambda: [slow(b) for b in parts]], a.repeats)
            lines.append(f"{tname:7s} {mname:24s} {1e3 * tf:10.3f} {1e3 * ts:15.3f} {ts / tf:8.1f}x")
            if len(parts) == 1: loop_all[tname] = ts
    index = ct.index.flatten()
    gather = lambda b: F.pad(b, (0, 1)).index_select(-1, index).unflatten(-1, (ct.n_tokens, ct.token_dim))
    assert torch.equal(gather(w), ct.tokenize(w))
    lines.append(f"reference: chunk tokens by the generic gather instead, whole zoo in one call: {1e3 * best_time(lambda: gather(w), a.repeats):.3f} ms")
    for tname, tk in (('chunk', ct), ('neuron', nt)):
        src = torch.randn(len(w), tk.n_tokens * tk.token_dim)
        tc = best_time(lambda: src.clone(), a.repeats)
        lines.append(f"reference: copying one {tname}-token output ({len(w)}, {tk.n_tokens}, {tk.token_dim}) once: "
                     f"{1e3 * tc:.3f} ms (no tokenizer can beat writing its output); whole-zoo loop / this copy = "
                     f"{loop_all[tname] / tc:.1f}x, the most any tokenizer could gain in one call")
    text = '\n'.join(lines)
    print(text)
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(text + '\n')


if __name__ == '__main__': main()
