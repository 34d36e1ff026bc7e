"""Check the installed environment right after installing: every library the project uses imports, and `pip check` passes.

Prints one line per problem, naming the package, its version and the fix, and exits with status 1 if there is any.
Run by scripts/setup.sh (so by both README commands and CI); run it yourself with `.venv/bin/python scripts/check_env.py`.
"""
import importlib, importlib.metadata as md, re, subprocess, sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent/'requirements-lock.txt'
# (module to import, distribution that provides it)
LIBRARIES = [('numpy', 'numpy'), ('pandas', 'pandas'), ('scipy', 'scipy'), ('sklearn', 'scikit-learn'), ('networkx', 'networkx'),
             ('matplotlib', 'matplotlib'), ('tqdm', 'tqdm'), ('torch', 'torch'), ('torchvision', 'torchvision'),
             ('torchaudio', 'torchaudio'), ('avalanche.training', 'avalanche-lib'), ('geomloss', 'geomloss'), ('ot', 'pot'),
             ('gudhi', 'gudhi'), ('wandb', 'wandb'), ('accelerate', 'accelerate'), ('fastcore.script', 'fastcore'),
             ('execnb.nbio', 'execnb'), ('nbdev', 'nbdev'), ('ray', 'ray'), ('weight_merging.report', 'weight_merging')]
DEV = {'execnb', 'nbdev', 'ray'}  # only needed for development (ray: also the optional extra weight_merging[ray]); checked when installed

def locked() -> dict:
    "Distribution name (normalized) -> version pinned in the lock."
    if not LOCK.exists(): return {}
    pins = (re.match(r'^([A-Za-z0-9_.\-]+)==([^\s;#]+)', l) for l in LOCK.read_text().splitlines())
    return {norm(m[1]): m[2] for m in pins if m}

def norm(name: str) -> str: return re.sub(r'[-_.]+', '-', name).lower()

def version(dist: str):
    try: return md.version(dist)
    except md.PackageNotFoundError: return None

def main() -> int:
    pins, problems = locked(), []
    for mod, dist in LIBRARIES:
        v = version(dist)
        if v is None:
            if dist in DEV: continue
            problems.append(f"{dist} is not installed: run `bash scripts/setup.sh`"); continue
        try: importlib.import_module(mod)
        except BaseException as e:  # an undefined symbol is an OSError; some packages raise RuntimeError or worse
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            want = pins.get(norm(dist))
            fix = (f"install the locked {dist}=={want}: `.venv/bin/pip install -c requirements-lock.txt {dist}=={want}`"
                   if want and want != v else "reinstall the locked set: `bash scripts/setup.sh`")
            torch_v = version('torch')
            problems.append(f"{dist} {v} does not import{f' with torch {torch_v}' if dist != 'torch' and mod.startswith(('torch', 'avalanche')) else ''} "
                            f"({type(e).__name__}: {msg}); fix: {fix}")
    r = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True)
    if r.returncode: problems += [f"pip check: {l} (fix: `bash scripts/setup.sh` installs the locked set)" for l in r.stdout.strip().splitlines()]
    drift = [f"{d} {version(d)} (lock: {v})" for d, v in pins.items() if d not in ('pip', 'weight-merging') and version(d) not in (None, v)]
    if drift: print(f"note: {len(drift)} installed version(s) differ from requirements-lock.txt: {', '.join(drift[:5])}{' ...' if len(drift) > 5 else ''}")
    for p in problems: print(f"environment check failed: {p}", file=sys.stderr)
    if not problems: print(f"environment check: {len(LIBRARIES)} libraries import, pip check passes (torch {version('torch')}, "
                           f"torchvision {version('torchvision')}, torchaudio {version('torchaudio')})")
    return 1 if problems else 0

if __name__ == '__main__': sys.exit(main())
