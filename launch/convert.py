"""Converts an official PyTorch checkpoint into dg_jax's format (orbax params + arch.json).

Nothing in the checkpoint is executed and torch is not needed. Flags use guided-diffusion's /
DG's own names, given as JSON text or as the path of a JSON file. A converted folder is
accepted wherever dg_jax takes a weights file (and the official file is accepted too: it is
then converted in memory on each run).
"""
import argparse
import json
import pathlib
import sys

from dg_jax.cli import run_command
from dg_jax.convert.saved import convert_checkpoint, save_converted
from dg_jax.errors import ConfigError

EXAMPLES = {
    "edm": "--checkpoint=edm-cifar10-32x32-uncond-vp.pkl --output=ckpt/edm_uncond",
    "adm_unet": "--checkpoint=256x256_diffusion.pt --flags=unet_flags.json --output=ckpt/adm256",
    "adm_classifier": "--checkpoint=32x32_classifier.pt --flags=classifier_flags.json "
                      "--output=ckpt/adm_classifier   (--integer_time for guided-diffusion's "
                      "noisy classifiers)",
    "dg_discriminator": "--classifier=32x32_classifier.pt --checkpoint=discriminator_60.pt "
                        "--flags=classifier_flags.json --head_flags=head_flags.json "
                        "--output=ckpt/dg_discriminator",
    "fid_inception": "--checkpoint=pt_inception-2015-12-05-6726825d.pth --output=ckpt/inception",
    "sd_vae": "--checkpoint=sd-vae-ft-mse --output=ckpt/sd_vae   (a diffusers folder)",
    "dit": "--checkpoint=DiT-XL-2-256x256.pt --flags='{\"model\": \"DiT-XL/2\", \"input_size\": 32}' "
           "--output=ckpt/dit_xl2_256   (--dit_entry=model: a train.py checkpoint's raw weights)",
}
KIND_HELP = {
    "edm": "an EDM network pickle (VP/VE/iDDPM/EDM preconditioning; the pickle's `ema`)",
    "adm_unet": "a guided-diffusion UNet .pt (its model flags in --flags)",
    "adm_classifier": "an ADM classifier .pt: DG's feature extractor (VP tau) or a noisy "
                      "classifier for classifier guidance (--integer_time)",
    "dg_discriminator": "DG's discriminator: the frozen classifier .pt (--classifier) and the "
                        "trained head .pt (--checkpoint)",
    "fid_inception": "pytorch-fid's FID Inception-v3 weights .pth",
    "sd_vae": "Stable Diffusion's VAE: a diffusers AutoencoderKL folder (config.json + "
              "diffusion_pytorch_model.safetensors or .bin), e.g. stabilityai/sd-vae-ft-mse",
    "dit": "a DiT .pt: the released state dict or a train.py checkpoint (its 'ema'); --flags: "
           "the DiT constructor arguments, or a DiT-*/* name as 'model' plus the others",
}


def _epilog() -> str:
    lines = ["kinds (python -m launch.convert --kind=KIND ...):"]
    for kind, example in EXAMPLES.items():
        lines += [f"  {kind}: {KIND_HELP[kind]}", f"      --kind={kind} {example}"]
    lines += ["", "Example flags file for DG's CIFAR-10 classifier (classifier_flags.json):",
              '  {"image_size": 32, "classifier_use_fp16": false, "classifier_width": 128, '
              '"classifier_depth": 4,', '   "classifier_attention_resolutions": "32,16,8", '
              '"classifier_use_scale_shift_norm": true,', '   "classifier_resblock_updown": '
              'true, "classifier_pool": "attention", "out_channels": 1000}']
    return "\n".join(lines)


def read_flags(value, flag: str):
    """JSON text, or the path of a JSON file (long inline JSON is never taken for a path)."""
    if value is None:
        return None
    text = value.strip()
    if not text.startswith(("{", "[")):
        path = pathlib.Path(value)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"{flag}={value}: neither JSON text nor a readable JSON file "
                              f"({err.strerror or err})") from None
        where = f"{flag} file {path}"
    else:
        where = f"{flag} JSON text"
    try:
        flags = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where} is not valid JSON: {err.msg} at line {err.lineno} column "
                          f"{err.colno}") from None
    if not isinstance(flags, dict):
        raise ConfigError(f"{where} must be a JSON object of flag names and values")
    return flags


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=sorted(EXAMPLES), metavar="KIND",
                   help="what the checkpoint holds: " + ", ".join(EXAMPLES))
    p.add_argument("--checkpoint", help="the .pkl / .pt / .pth file (the head for "
                   "dg_discriminator; the diffusers folder for sd_vae)")
    p.add_argument("--classifier", help="dg_discriminator: the frozen ADM classifier .pt")
    p.add_argument("--flags", help="architecture flags: JSON text or a JSON file")
    p.add_argument("--head_flags", help="dg_discriminator: the head's flags (JSON text or file)")
    p.add_argument("--integer_time", action="store_true",
                   help="adm_classifier: integer timesteps (guided-diffusion) instead of "
                        "DG's VP tau in [0, 1]")
    p.add_argument("--dit_entry", default="ema", choices=("ema", "model"),
                   help="dit: which weights of a train.py checkpoint to read (default ema)")
    p.add_argument("--output", required=True, help="the folder to write (must not exist)")
    p.add_argument("--verbose", action="store_true", help="tracebacks for known errors too")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def convert():
        inputs = {k: v for k, v in (("checkpoint", args.checkpoint),
                                    ("classifier", args.classifier)) if v}
        for name, path in inputs.items():
            folder = args.kind == "sd_vae" and name == "checkpoint"  # a diffusers folder
            if not (pathlib.Path(path).is_dir() if folder else pathlib.Path(path).is_file()):
                raise ConfigError(f"--{name}={path} not found")
        converted = convert_checkpoint(args.kind, inputs, read_flags(args.flags, "--flags"),
                                       read_flags(args.head_flags, "--head_flags"),
                                       dg_time=not args.integer_time,
                                       dit_entry=args.dit_entry)
        out = save_converted(converted, args.output)
        print(f"wrote {out}/arch.json and {out}/params ({converted.kind})")

    return run_command(convert, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
