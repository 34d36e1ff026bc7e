"""Execute notebooks in place so their saved outputs (what the docs site shows) come from the committed files.

Usage (from the repository root, with the project's environment active):

    OMP_NUM_THREADS=1 python scripts/execute_notebooks.py nbs/00_zoo.ipynb nbs/05_train.ipynb nbs/06_eval.ipynb

Options: `--flags "slow"` also runs cells carrying those test flags (as `nbdev_test --flags` does);
`--timeout SECONDS` limits each cell; `--no-clean` skips the final `nbdev_clean`.

Each notebook runs the way `nbdev_test` runs it (execnb's `CaptureShell`, a fresh process per notebook, the
notebook's folder as working directory, the project root on `sys.path`, `IN_TEST=1`): code cells flagged with
one of settings.ini's `tst_flags` (e.g. `#| slow`, `#| notest`) that are not requested with `--flags`, cells
with `#| eval: false`, and `nbdev_export()` cells are skipped and KEEP whatever outputs they had; every executed
cell gets exactly the outputs of this run. If a cell raises, the run stops, the error names the cell (index, id,
first line) and the notebook file is left as it was.

Before saving, widget outputs (`application/vnd.jupyter.widget-view+json`) and progress-bar (tqdm) lines on
stderr are dropped. After saving, `nbdev_clean` runs on the file, and every saved output is scanned for text
that must not be committed: absolute paths of this machine (temporary folders, home folders, `site-packages`,
the repository's own absolute path, ...; see `leak_patterns`). Each finding is reported with its cell index
(counted from 0 over all cells, markdown included) and a snippet, and the script exits non-zero: fix the cell
(e.g. print names relative to a folder) and run it again before committing.
"""
import argparse, copy, os, re, subprocess, sys, time
from pathlib import Path

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
# a tqdm bar: "desc:  42%|####      | 5/12 [00:01<00:02, 3.1it/s]" (also the unknown-total form "5it [00:01, 3.1it/s]")
_BAR = re.compile(r'(\d+%\|.*\|)|(\d+(\.\d+)?(it|s)?\s*\[\d+:\d+(:\d+)?(<[\d:?]+)?,\s*[\d.?]+\s*(it/s|s/it)\])')
# binary payloads (base64) are not scanned: a path-like run of characters can occur in them by chance
_BINARY_PREFIXES = ('image/png', 'image/jpeg', 'image/gif', 'application/pdf')


def leak_patterns(root=None):
    "Regexes for absolute paths of this machine that must not appear in committed outputs"
    pats = [r'/tmp/', r'/var/tmp/', r'/var/folders/', r'/private/var/', r'/home/',
            r'(?<![\w.~-])/root\b', r'site-packages', r'dist-packages', r'/usr/(local/)?lib/python',
            r'/opt/conda', r'\.venv/', r'[A-Za-z]:\\\\?Users\\\\?']
    for p in {str(Path.home()), str(root) if root else None}:
        if p and p not in ('/', ''): pats.append(re.escape(p))
    return re.compile('|'.join(f'(?:{p})' for p in pats))


def _text(v): return ''.join(v) if isinstance(v, list) else str(v)


def output_texts(out):
    "(kind, text) pairs of the textual parts of one saved output"
    ot = out.get('output_type')
    if ot == 'stream': yield f"stream:{out.get('name')}", _text(out.get('text', ''))
    elif ot == 'error':
        yield 'error', f"{out.get('ename')}: {out.get('evalue')}\n" + '\n'.join(out.get('traceback', []))
    for k, v in (out.get('data') or {}).items():
        if k.startswith(_BINARY_PREFIXES): continue
        yield k, _text(v) if isinstance(v, str) or isinstance(v, list) and all(isinstance(o, str) for o in v) else repr(v)


def find_leaks(nb, pat):
    "List of (cell index, cell id, output kind, snippet) for every match of `pat` in `nb`'s saved outputs"
    res = []
    for i, cell in enumerate(nb['cells']):
        for out in cell.get('outputs', []) if cell.get('cell_type') == 'code' else []:
            for kind, txt in output_texts(out):
                for m in pat.finditer(txt):
                    a, b = txt.rfind('\n', 0, m.start()) + 1, txt.find('\n', m.end())
                    line = txt[a:b if b >= 0 else len(txt)]
                    s = max(0, m.start() - a - 60)
                    res.append((i, cell.get('id'), kind, line[s:s + 160].strip()))
    return res


def _clean_stderr(text):
    "stderr text as a terminal would finally show it, without progress-bar lines"
    keep = []
    for line in text.split('\n'):
        line = line.split('\r')[-1] if '\r' in line.rstrip('\r') else line.rstrip('\r')
        if _BAR.search(line): continue
        keep.append(line)
    return '\n'.join(keep)


def tidy_outputs(outputs):
    "Drop widget outputs and tqdm noise from a cell's outputs (a list of dicts in notebook format)"
    res = []
    for o in outputs:
        if WIDGET_MIME in (o.get('data') or {}): continue
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
            t = _clean_stderr(_text(o.get('text', '')))
            if not t.strip(): continue
            o = {**o, 'text': t.splitlines(True)}
        res.append(o)
    # merge consecutive streams of the same name (as Jupyter shows them)
    merged = []
    for o in res:
        if merged and o.get('output_type') == 'stream' and merged[-1].get('output_type') == 'stream' \
                and merged[-1].get('name') == o.get('name'):
            merged[-1] = {**merged[-1], 'text': (_text(merged[-1]['text']) + _text(o['text'])).splitlines(True)}
        else: merged.append(o)
    return merged


def _first_line(src):
    lines = [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')]
    return (lines[0] if lines else src.splitlines()[0] if src else '')[:100]


def execute_one(fn, force_flags=(), timeout=None):
    "Execute notebook `fn` in place (in this process); returns 0, or 1 if a cell raised (the file is then untouched)"
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from execnb.nbio import read_nb, write_nb, _dict2obj
    from execnb.shell import CaptureShell
    from nbdev.config import get_config
    from nbdev.process import NBProcessor, extract_directives, nb_lang
    from nbdev.frontmatter import FrontmatterProc

    fn = Path(fn).absolute()
    cfg = get_config()
    flags = set(cfg.tst_flags.split()) - set(force_flags)
    sys.path.insert(0, str(cfg.config_path))
    os.environ['IN_TEST'] = '1'
    fm = getattr(NBProcessor(fn, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}) or {}
    nb = read_nb(fn)
    if str2bool(fm.get('skip_exec', False)) or nb_lang(nb) != 'python':
        print(f'{fn.name}: skip_exec or not python: nothing executed'); return 0

    shell = CaptureShell(fn, timeout=timeout)
    n_run = n_skip = 0
    t0 = time.time()
    with working_directory(fn.parent):
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            run = copy.deepcopy(cell)
            direc = extract_directives(run, remove=True, lang='python')  # what nbdev_test runs
            skip = ('nbdev_export' + '(' in cell.source
                    or direc.get('eval:', [''])[0].lower() == 'false'
                    or bool(flags & direc.keys()))
            if skip: n_skip += 1; continue
            tc = time.time()
            shell._cell_idx = i + 1
            outs = shell.run(run.source)
            if shell.exc is not None:
                tb = shell.prettytb(fname=fn)
                sys.stderr.write(f'\nERROR: {fn.name}: cell {i} (id {cell.get("id")}) raised '
                                 f'{type(shell.exc).__name__}: {shell.exc}\n  cell starts: {_first_line(cell.source)!r}\n'
                                 f'{tb}\nThe notebook was NOT written.\n')
                return 1
            cell.outputs = _dict2obj(tidy_outputs([dict(o) for o in outs]))
            n_run += 1
            dt = time.time() - tc
            if dt > 5: print(f'  cell {i}: {dt:.0f}s  {_first_line(cell.source)!r}', flush=True)
    write_nb(nb, fn)
    print(f'{fn.name}: ran {n_run} code cells, skipped {n_skip}, {time.time() - t0:.0f}s', flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebooks', nargs='+', help='notebook files to execute in place')
    p.add_argument('--flags', default='', help='space separated test flags whose cells should run too (e.g. "slow")')
    p.add_argument('--timeout', type=int, default=None, help='seconds allowed per cell')
    p.add_argument('--no-clean', action='store_true', help='do not run nbdev_clean afterwards')
    p.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # internal: run in this process
    a = p.parse_args(argv)
    if a.single: return execute_one(a.notebooks[0], a.flags.split(), a.timeout)

    from execnb.nbio import read_nb
    from nbdev.config import get_config
    root = get_config().config_path
    pat = leak_patterns(root.resolve())
    clean = Path(sys.executable).parent / 'nbdev_clean'
    bad = 0
    for nbf in a.notebooks:
        f = Path(nbf)
        if not f.is_file(): sys.stderr.write(f'ERROR: no such notebook: {nbf}\n'); return 2
        print(f'== executing {nbf}', flush=True)
        cmd = [sys.executable, __file__, '--single', str(f), '--flags', a.flags]
        if a.timeout: cmd += ['--timeout', str(a.timeout)]
        if subprocess.run(cmd).returncode:
            sys.stderr.write(f'ERROR: executing {nbf} failed (see above)\n'); return 1
        if not a.no_clean:
            subprocess.run([str(clean) if clean.exists() else 'nbdev_clean', '--fname', str(f)], check=True)
        leaks = find_leaks(read_nb(f), pat)
        for i, cid, kind, snip in leaks:
            print(f'LEAK {nbf}: cell {i} (id {cid}) {kind}: {snip}')
            bad += 1
        nout = sum(len(c.get('outputs', [])) for c in read_nb(f).cells)
        print(f'   {nbf}: {nout} outputs saved, size {f.stat().st_size / 1e3:.0f} kB, {len(leaks)} leaked paths', flush=True)
    if bad:
        sys.stderr.write(f'\n{bad} output(s) contain absolute paths of this machine: make those cells print relative '
                         f'or generic names and run this script again. Do not commit these outputs.\n')
        return 1
    return 0


if __name__ == '__main__': sys.exit(main())
