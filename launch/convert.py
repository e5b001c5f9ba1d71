"""Converts an official PyTorch checkpoint into dg_jax's format (orbax params + arch.json).

  python -m launch.convert --kind=edm --checkpoint=edm-cifar10-32x32-uncond-vp.pkl --output=DIR
  python -m launch.convert --kind=adm_unet --checkpoint=256x256_diffusion.pt \
      --flags='{"image_size": 256, "num_channels": 256, "num_res_blocks": 2, ...}' --output=DIR
  python -m launch.convert --kind=adm_classifier --checkpoint=32x32_classifier.pt \
      --flags=classifier_flags.json --output=DIR
  python -m launch.convert --kind=dg_discriminator --classifier=32x32_classifier.pt \
      --checkpoint=discriminator_60.pt --flags=classifier.json --head_flags=head.json --output=DIR
  python -m launch.convert --kind=fid_inception --checkpoint=pt_inception-2015-12-05-6726825d.pth --output=DIR

Flags are guided-diffusion's / DG's own names, as JSON text or a path to a JSON file. Nothing in
the checkpoint is executed and torch is not needed.
"""
import argparse
import json
import pathlib
import sys


def _flags(value):
    if value is None:
        return None
    path = pathlib.Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--flags/--head_flags must be JSON text or a JSON file: {err}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True)
    parser.add_argument("--checkpoint", help="the .pkl / .pt / .pth file (the head for "
                        "dg_discriminator)")
    parser.add_argument("--classifier", help="dg_discriminator: the frozen ADM classifier .pt")
    parser.add_argument("--flags", help="architecture flags (JSON text or file)")
    parser.add_argument("--head_flags", help="dg_discriminator: the head's flags")
    parser.add_argument("--integer_time", action="store_true",
                        help="adm_classifier: integer timesteps (guided-diffusion) instead of "
                             "DG's VP tau in [0, 1]")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    from dg_jax.convert.saved import convert_checkpoint, save_converted

    inputs = {k: v for k, v in (("checkpoint", args.checkpoint),
                                ("classifier", args.classifier)) if v}
    converted = convert_checkpoint(args.kind, inputs, _flags(args.flags), _flags(args.head_flags),
                                   dg_time=not args.integer_time)
    out = save_converted(converted, args.output)
    print(f"wrote {out}/arch.json and {out}/params ({converted.kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
