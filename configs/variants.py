"""`:a,b` variant strings of the config files (not a config itself)."""
import pathlib


def parse_variants(arg: str, allowed, config_file: str) -> set:
    """The comma-separated variants in `arg`; a ValueError naming the file and its variants
    for any other. `allowed` is the config's VARIANTS; `config_file` its path (__file__)."""
    variants = set(filter(None, arg.split(",")))
    unknown = variants - set(allowed)
    if unknown:
        name = pathlib.Path(config_file).name
        raise ValueError(f"unknown variants {sorted(unknown)} of configs/{name}; use any of "
                         f"{sorted(allowed)}, comma-separated")
    return variants
