"""What the entry points in `launch/` share: known user errors become one line on stderr and
exit status 2 (a traceback only with --verbose); flag errors name the flag and suggest the
closest config field."""
from __future__ import annotations

import difflib
import importlib.util
import pathlib
import sys
import traceback
from typing import Callable, Sequence

from dg_jax.errors import UserError

# What a user can fix from the message alone. A plain ValueError / OSError is what a bad field
# or path raises throughout the library (configs, readers); anything else is a bug and keeps
# its traceback.
USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)
EXIT_USER_ERROR = 2
# The launch scripts' --compilation_cache flag (dg_jax.compile_cache; kept here, JAX-free).
COMPILATION_CACHE_HELP = ("JAX persistent compilation cache directory ('off' disables; default: "
                          "$DG_JAX_COMPILATION_CACHE or ~/.cache/dg_jax/jax)")


def report(err: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(err)
    text = str(err) or type(err).__name__
    print(f"error: {text}", file=sys.stderr)
    if not verbose:
        print("(run again with --verbose for the traceback)", file=sys.stderr)


def run_command(fn: Callable[[], object], verbose: bool = False) -> int:
    """Calls fn() and returns the exit status: 0, or 2 after reporting a known user error."""
    try:
        fn()
    except USER_ERRORS as err:
        report(err, verbose)
        return EXIT_USER_ERROR
    return 0


def parse_flags_or_exit(flag_values, argv: Sequence[str]) -> list[str]:
    """absl flag parsing with one-line errors: an unknown --config.x.y names the closest fields
    of the config; an error inside a config file gives its last line (the exception)."""
    verbose = any(a in ("--verbose", "--verbose=true", "--verbose=True") for a in argv)
    try:
        try:
            remaining = flag_values(argv)
        except SystemExit:  # absl exits with status 1 after printing --help
            if any(a in ("--help", "-h", "--helpshort", "--helpfull", "-?") for a in argv):
                sys.exit(0)
            raise
        if "config" in flag_values and flag_values["config"].present:
            flag_values.config.to_dict()  # a config file that failed to load raises here
        return remaining
    except BrokenPipeError:  # `--help | head`: the reader closed the pipe; nothing is wrong
        sys.stderr.close()
        sys.exit(0)
    except Exception as err:  # noqa: BLE001  (every parse error comes from the command line)
        if verbose:
            traceback.print_exception(err)
        print(f"error: {_flag_error_text(err, argv)}", file=sys.stderr)
        print("(--help lists the flags and the configs)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _flag_error_text(err: BaseException, argv: Sequence[str]) -> str:
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    keys = _config_keys(spec) if spec else None
    if keys is not None:
        for arg in argv:
            if arg.startswith("--config."):
                field = arg[len("--config."):].split("=", 1)[0]
                if field not in keys:
                    close = difflib.get_close_matches(field, keys, n=3)
                    hint = (f"; did you mean {', '.join('--config.' + k for k in close)}?"
                            if close else "")
                    return f"--config.{field}: {spec} has no field {field!r}{hint}"
    text = str(err)
    if spec is not None and keys is None:
        path = spec.partition(":")[0]
        if not pathlib.Path(path).is_file():
            return f"config file {path} not found (--config={spec}; --help lists the configs)"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if "Traceback (most recent call last)" in text and lines:  # raised inside the config file
        return f"{lines[0].rstrip(':')} {lines[-1]}"
    return text or type(err).__name__


def _config_keys(spec: str) -> list[str] | None:
    """Dotted field names of the config `path[:arg]`, or None if it cannot be loaded."""
    path, _, arg = spec.partition(":")
    try:
        module_spec = importlib.util.spec_from_file_location("_dg_jax_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        config = module.get_config(arg) if arg else module.get_config()
    except Exception:  # noqa: BLE001  (only used for suggestions)
        return None
    # dg_jax.workdir imports JAX: launch.main imports this module before it parses flags, and
    # answers --help and flag errors without importing JAX
    from dg_jax.workdir import flatten  # noqa: PLC0415

    return sorted(flatten(config.to_dict()))
