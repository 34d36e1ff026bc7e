"""Run nbdev_test on the project's notebooks and end with a plain 'N passed, N failed' line (notebooks)."""
import os, re, subprocess, sys
from pathlib import Path
from nbdev.doclinks import nbglob
from nbdev.config import get_config

def main(args):
    nbs = sorted(Path(p).name for p in nbglob(get_config().nbs_path))
    exe = Path(sys.executable).parent/'nbdev_test'
    # nbdev_test runs notebooks in parallel, one per core: one thread each, since oversubscribed OpenMP threads
    # spin against each other and slow small-tensor work many times over
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    proc = subprocess.run([str(exe), '--do_print', *args], capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    print(out)
    failed = re.findall(r'^\t(\S+\.ipynb)$', out.split('Failed On The Following Notebooks:')[-1], re.M) if proc.returncode else []
    if proc.returncode and not failed: failed = ['(nbdev_test itself)']
    print(f'{len(nbs) - len([f for f in failed if f in nbs])} passed, {len(failed)} failed')
    return 1 if proc.returncode else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
