"""`:a,b` variant strings of the config files (not a config itself)."""


def parse_variants(arg: str, allowed: set, config_file: str) -> set:
    """The comma-separated variants in `arg`; a ValueError naming the file and its variants
    for any other."""
    variants = set(filter(None, arg.split(",")))
    unknown = variants - allowed
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)} of {config_file}; use any of "
                         f"{sorted(allowed)}, comma-separated")
    return variants
