"""SHA-256 digests of written files, checked when they are read back.

Orbax and NumPy read a truncated or altered file without complaint as long as it still parses
(one flipped byte in a checkpoint silently changes a parameter), so dg_jax records a digest of
every checkpoint folder and sample shard when it writes them and checks it on restore / resume:
- a folder (an orbax checkpoint step, a converted checkpoint's params): `DIGEST_FILE` inside it
  maps every file's relative path to its SHA-256;
- a single file (a sample shard): its hex digest, kept by the caller (a sidecar and the
  manifest).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

DIGEST_FILE = "dg_jax_sha256.json"
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_digests(directory: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every file below `directory` but the digest file itself."""
    directory = pathlib.Path(directory)
    return {p.relative_to(directory).as_posix(): file_sha256(p)
            for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != DIGEST_FILE}


def write_folder_digest(directory: str | os.PathLike) -> None:
    """Records the digests of `directory`'s files in `directory/DIGEST_FILE` (atomically)."""
    directory = pathlib.Path(directory)
    text = json.dumps(folder_digests(directory), indent=1, sort_keys=True)
    tmp = directory / (DIGEST_FILE + ".tmp")
    tmp.write_text(text)
    tmp.replace(directory / DIGEST_FILE)


def verify_folder(directory: str | os.PathLike) -> str | None:
    """None if every file below `directory` matches its recorded digest; else a sentence naming
    the first file that changed, vanished or appeared. A folder without a digest file (written
    by an older dg_jax) is reported as such."""
    directory = pathlib.Path(directory)
    path = directory / DIGEST_FILE
    if not path.is_file():
        return f"{directory} has no {DIGEST_FILE} (written by an older dg_jax, or damaged)"
    try:
        recorded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{path} is damaged (not valid JSON)"
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
               if p.is_file() and p.name != DIGEST_FILE}
    for rel, digest in sorted(recorded.items()):
        if rel not in present:
            return f"{directory / rel} is missing"
        if file_sha256(directory / rel) != digest:
            return f"{directory / rel} was altered or truncated since it was written (SHA-256 differs)"
    extra = sorted(present - set(recorded))
    if extra:
        return f"{directory / extra[0]} was not part of the checkpoint when it was written"
    return None
