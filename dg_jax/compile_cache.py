"""JAX's persistent compilation cache, switched on in one place for every entry point.

Compiling is a large share of short runs (a reduced CIFAR-10 DDPM++ EDM sampler takes about
30 s to compile on CPU, about 55 s with DG, against seconds of sampling). With the cache on, a
program compiled once (by any process on the machine) is read back from disk the next time.

Where the cache lives, in order:
  1. the `path` argument (the launch scripts' --compilation_cache flag),
  2. the environment variable DG_JAX_COMPILATION_CACHE,
  3. `$XDG_CACHE_HOME/dg_jax/jax` (default `~/.cache/dg_jax/jax`).
Any of them set to "off" (or "none", "0", "false", "") turns the cache off.

Only programs whose compilation took at least `min_compile_seconds` (default 1 s) are written,
so the thousands of tiny eager ops do not fill the disk. JAX opens the cache at its first
compilation; calling `enable_compilation_cache` again later (another folder, or off) resets it,
so the new setting holds for the programs compiled after the call.
"""
from __future__ import annotations

import os
import pathlib

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV_VAR = "DG_JAX_COMPILATION_CACHE"
OFF_VALUES = ("off", "none", "0", "false", "no", "")


def default_cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "dg_jax" / "jax"


def resolve_cache_dir(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """The directory the cache will use, or None when it is off (see the module docstring)."""
    value = os.fspath(path) if path is not None else os.environ.get(ENV_VAR)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in OFF_VALUES:
        return None
    return pathlib.Path(value).expanduser()


def enable_compilation_cache(path: str | os.PathLike | None = None, *,
                             min_compile_seconds: float = 1.0) -> pathlib.Path | None:
    """Turns the persistent cache on (or leaves it off) and returns its directory (or None)."""
    directory = resolve_cache_dir(path)
    compilation_cache.reset_cache()  # forget a cache JAX opened under the previous setting
    if directory is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"compilation cache directory {directory} cannot be created ({err}); "
                         f"set --compilation_cache (or ${ENV_VAR}) to a writable folder or "
                         "'off'") from err
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
