"""Evaluates a directory of sample shards: FID, Inception Score, precision/recall and KID.

  python -m launch.evaluate --samples=DIR --inception_weights=pt_inception-2015-12-05.pth \
      (--ref_stats=cifar10-32x32.npz | --ref_npz=data.npz | --ref_folder=IMAGES/ \
       | --ref_tfds=cifar10) [--metrics=fid,is,pr,kid] [--batch_size=250] [--num_samples=N] \
      --output=results.json
  python -m launch.evaluate --write_stats --ref_npz=data.npz \
      --inception_weights=pt_inception-2015-12-05.pth --output=stats.npz

`--samples` is a folder written by `dg_jax.data.shards` (`samples_000000.npz`, ...,
`manifest.json`). Features are pool3 of the FID Inception-v3 with pytorch-fid's weights, extracted
under `jax.jit` with the batch sharded over all local devices. The weights file is the one
pytorch-fid uses; download it once yourself from

    https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

(`dg_jax.convert.inception.FID_WEIGHTS_URL`) and pass its path: nothing is ever downloaded, and it
is read without torch. Reference statistics (`--ref_stats`) are EDM's / DG's `.npz` with `mu`,
`sigma` (e.g. EDM's `cifar10-32x32.npz`), or are computed from reference images: a dataset .npz
in DG's layout (`arr_0`, or `samples` + `label`), a folder of PNG/JPEG images (needs Pillow), or a
TFDS dataset (needs TensorFlow: `pip install -e '.[tf]'`; `--tfds_data_dir` / `--tfds_manual_dir`
for offline machines). With `--ref_stats` only FID and IS are available (precision/recall and KID
need reference features). `--write_stats` writes a reference `.npz` in the same format.

`--features=digits` uses the small scikit-learn-digits CNN instead (the embedded digit runs).
Metrics: FID (float64, scipy sqrtm), IS (10 splits, softmax of pool3 @ W_fc),
precision/recall (k = 3), KID (100 subsets of <= 1000). Results are printed and written as JSON.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax

from dg_jax.checkpoint import write_json
from dg_jax.cli import COMPILATION_CACHE_HELP, run_command
from dg_jax.compile_cache import enable_compilation_cache
from dg_jax.errors import check_finite
from dg_jax.eval import reference
from dg_jax.eval.evaluate import (
    ALL_METRICS,
    compute_metrics,
    digits_backend,
    inception_backend,
    parse_metrics,
    sample_batches,
)
from dg_jax.eval.stats_io import feature_statistics, load_stats, save_stats


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", help="folder of sample shards (with manifest.json)")
    p.add_argument("--write_stats", action="store_true",
                   help="write reference statistics of --ref_npz/--ref_folder/--ref_tfds to "
                        "--output instead of evaluating")
    p.add_argument("--features", default="inception", choices=("inception", "digits"))
    p.add_argument("--inception_weights", help="pytorch-fid's pt_inception-2015-12-05 .pth")
    p.add_argument("--digits_resolution", type=int, default=8)
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--ref_stats", help="reference statistics .npz (mu, sigma)")
    ref.add_argument("--ref_npz", help="reference images: dataset .npz (arr_0 or samples)")
    ref.add_argument("--ref_folder", help="reference images: folder of PNG/JPEG files")
    ref.add_argument("--ref_tfds", help="reference images: TFDS dataset name (needs '.[tf]')")
    p.add_argument("--tfds_split", default="train")
    p.add_argument("--tfds_data_dir", default=None)
    p.add_argument("--tfds_manual_dir", default=None)
    p.add_argument("--metrics", default=None,
                   help="comma-separated subset of fid,is,pr,kid (default: all that the "
                        "reference allows)")
    p.add_argument("--batch_size", type=int, default=250, help="global feature batch size")
    p.add_argument("--num_samples", type=int, default=None,
                   help="evaluate the first N samples (default: all in the manifest)")
    p.add_argument("--output", required=True, help="results .json (or stats .npz)")
    p.add_argument("--verbose", action="store_true", help="tracebacks for known errors too")
    p.add_argument("--compilation_cache", default=None, help=COMPILATION_CACHE_HELP)
    return p


def _backend(args, parser):
    if args.features == "digits":
        return digits_backend(args.digits_resolution)
    if not args.inception_weights:
        parser.error("--features=inception needs --inception_weights=PATH (pytorch-fid's "
                     "pt_inception-2015-12-05-6726825d.pth; see this module's docstring)")
    return inception_backend(args.inception_weights, batch_size=args.batch_size,
                             field="--inception_weights")


def _reference_batches(args):
    """(description, iterator of uint8 batches) of the reference images, or None."""
    if args.ref_npz:
        images = reference.load_npz_images(args.ref_npz)
        return f"npz:{args.ref_npz}", reference.rebatch([images], args.batch_size)
    if args.ref_folder:
        return (f"folder:{args.ref_folder}",
                reference.iter_image_folder(args.ref_folder, args.batch_size))
    if args.ref_tfds:
        return (f"tfds:{args.ref_tfds}/{args.tfds_split}",
                reference.iter_tfds_images(args.ref_tfds, args.tfds_split, args.tfds_data_dir,
                                           args.tfds_manual_dir, batch_size=args.batch_size))
    return None


def run(args, parser, backend=None) -> dict:
    if args.batch_size < 1:
        parser.error("--batch_size must be >= 1")
    if args.write_stats:
        if args.ref_stats or not (args.ref_npz or args.ref_folder or args.ref_tfds):
            parser.error("--write_stats needs reference images: --ref_npz, --ref_folder or "
                         "--ref_tfds")
    elif not args.samples:
        parser.error("--samples=DIR is required (or --write_stats)")
    elif not (args.ref_stats or args.ref_npz or args.ref_folder or args.ref_tfds):
        parser.error("give a reference: --ref_stats, --ref_npz, --ref_folder or --ref_tfds")
    if args.metrics is None:
        metrics = ("fid", "is") if args.ref_stats else ALL_METRICS
    else:
        try:
            metrics = parse_metrics(args.metrics)
        except ValueError as err:
            parser.error(str(err))
        if args.ref_stats and {"pr", "kid"} & set(metrics):
            parser.error("--metrics pr and kid need reference images (--ref_npz, --ref_folder "
                         "or --ref_tfds), not --ref_stats")

    ref_stats = None
    if args.ref_stats:  # checked before any feature is computed: a wrong file fails fast
        width = backend.width if backend is not None else (
            64 if args.features == "digits" else 2048)
        ref_stats = load_stats(args.ref_stats, dim=width)
    backend = backend or _backend(args, parser)
    output = pathlib.Path(args.output)

    ref_features, ref_desc = None, f"stats:{args.ref_stats}"
    refs = _reference_batches(args)
    if refs is not None:
        ref_desc, batches = refs
        print(f"reference {ref_desc}: computing {backend.name} features", flush=True)
        ref_features, _ = backend.extract(batches, name="reference")
        print(f"reference {ref_desc}: {len(ref_features)} images, features {backend.name}")
    if args.write_stats:
        mu, sigma = feature_statistics(ref_features)
        if jax.process_index() == 0:
            output.parent.mkdir(parents=True, exist_ok=True)
            save_stats(output, mu, sigma)
        print(f"wrote {output} (mu {mu.shape}, sigma {sigma.shape}) from {ref_desc}")
        return {"mu": mu, "sigma": sigma}

    num, batches = sample_batches(args.samples, args.batch_size, args.num_samples)
    features, logits = backend.extract(batches, name="samples", total=num)
    print(f"samples {args.samples}: {num} images, features {backend.name}")
    results = compute_metrics(features, logits, metrics, ref_stats=ref_stats,
                              ref_features=ref_features)
    check_finite(results, "evaluate")
    for key, value in results.items():
        print(f"{key}: {value:.6g}")
    results.update({"samples": str(args.samples), "num_samples": int(num),
                    "features": backend.name, "reference": ref_desc,
                    "metrics": list(metrics)})
    if args.features == "inception" and args.inception_weights:
        results["inception_weights"] = str(args.inception_weights)
    write_json(output, results)
    print(f"wrote {output}")
    return results


def main(argv=None, *, backend=None) -> int:
    """CLI entry point. `backend` (a `dg_jax.eval.evaluate.FeatureBackend`) replaces the feature
    network; tests pass a tiny stand-in, users never need it."""
    parser = _parser()
    args = parser.parse_args(argv)
    enable_compilation_cache(args.compilation_cache)
    return run_command(lambda: run(args, parser, backend), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
