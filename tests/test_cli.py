"""The entry points as a user meets them: one-line errors (tracebacks only with --verbose),
help that lists configs and checkpoint kinds, and every command written in a config's
docstring accepted as written."""
import ast
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

import configs
from launch import convert as convert_cli
from launch import evaluate as evaluate_cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


def launch(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_user_errors_are_one_line_and_verbose_adds_the_traceback(tmp_path):
    out = launch("launch.main", "--config=configs/toy2d.py:smoke", f"--workdir={tmp_path}",
                 "--config.disc.widht=3")
    assert out.returncode == 2
    assert "did you mean --config.disc.width" in out.stderr and "Traceback" not in out.stderr
    out = launch("launch.main", "--config=configs/toy2d.py:smoke", f"--workdir={tmp_path}",
                 "--config.disc.batch_size=0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "disc.batch_size" in out.stderr.splitlines()[0]
    assert not tmp_path.joinpath("config.json").exists()  # nothing written
    out = launch("launch.main", "--config=configs/toy2d.py:smoke", f"--workdir={tmp_path}",
                 "--config.disc.batch_size=0", "--verbose")
    assert out.returncode == 2 and "Traceback" in out.stderr
    out = launch("launch.main", "--config=configs/toy2d.py:bogus", f"--workdir={tmp_path}")
    assert out.returncode == 2 and "unknown config argument(s) ['bogus']" in out.stderr
    assert "configs/toy2d.py" in out.stderr and "allowed: smoke" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_configs_variants_and_checkpoint_kinds():
    out = launch("launch.main", "--help")
    assert out.returncode == 0
    for path in configs.config_files():
        assert f"configs/{path.name}" in out.stdout
    assert "configs/cifar10_edm_dg.py[:cond|smoke]" in out.stdout
    text = convert_cli.parser().format_help()
    for kind, example in convert_cli.EXAMPLES.items():
        assert f"--kind={kind} {example}" in text


def test_convert_flags_from_long_inline_json_or_a_file(tmp_path):
    manifest = json.loads((FIXTURES / "parity" / "manifest.json").read_text()) \
        if (FIXTURES / "parity" / "manifest.json").is_file() else None
    if manifest is None:
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    case = next(c for c in manifest["cases"] if c["kind"] == "dg_discriminator")
    inline = json.dumps({**case["classifier_arch"], "classifier_pool": "attention"})
    inline = inline.replace(", ", "," + " " * 12)  # longer than a file name may be (255)
    assert len(inline) > 255
    head = tmp_path / "head.json"
    head.write_text(json.dumps(case["arch"]))
    parity = FIXTURES / "parity"
    rc = convert_cli.main(["--kind=dg_discriminator", f"--classifier={parity / case['classifier']}",
                           f"--checkpoint={parity / case['checkpoint']}", f"--flags={inline}",
                           f"--head_flags={head}", f"--output={tmp_path / 'disc'}"])
    assert rc == 0 and (tmp_path / "disc" / "arch.json").is_file()
    assert convert_cli.main(["--kind=edm", "--checkpoint=nope.pkl",
                             f"--output={tmp_path / 'x'}"]) == 2
    with pytest.raises(Exception, match=r"--flags file .*bad.json is not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        convert_cli.read_flags(str(tmp_path / "bad.json"), "--flags")


@pytest.mark.slow
def test_converted_inception_folder_is_accepted_and_degenerate_features_are_flagged(
        tmp_path, capsys):
    """pytorch-fid's layout with random weights (the fid fixture) maps every image to the
    same features: the FID is flagged, not reported as ~1e-19."""
    weights = FIXTURES / "fid" / "fid_inception_fp16.pth"
    if not weights.is_file():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    import numpy as np

    from dg_jax.data import shards

    assert convert_cli.main(["--kind=fid_inception", f"--checkpoint={weights}",
                             f"--output={tmp_path / 'inception'}"]) == 0
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    shards.write_shard(tmp_path / "s", 0, images)
    shards.write_manifest(tmp_path / "s", num_samples=8, shard_size=8)
    np.savez(tmp_path / "ref.npz", arr_0=images[::-1].copy())
    rc = evaluate_cli.main([f"--samples={tmp_path / 's'}", f"--ref_npz={tmp_path / 'ref.npz'}",
                            f"--inception_weights={tmp_path / 'inception'}", "--metrics=fid",
                            "--batch_size=8", f"--output={tmp_path / 'r.json'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "barely vary" in err and "eval.inception_weights" in err
    assert not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------ commands in the docstrings
def docstring_commands(path: pathlib.Path) -> list[list[str]]:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    joined = re.sub(r"\\\n\s*", " ", doc)
    return [shlex.split(line.strip())[2:] for line in joined.splitlines()
            if line.strip().startswith(("python -m launch.", "python3 -m launch."))]


def config_keys(spec: str) -> set:
    from dg_jax.cli import _config_keys

    keys = _config_keys(str(ROOT / spec))
    assert keys is not None, f"{spec} does not load"
    return set(keys)


def check_main_command(args, source, monkeypatch):
    args = [a.replace("--config=configs/", f"--config={ROOT}/configs/") for a in args]
    # config_flags defines the --config.* override flags from sys.argv when --config is defined
    monkeypatch.setattr(sys, "argv", ["prog", *args])
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
    for name in ("workdir", "coordinator_address"):
        flags.DEFINE_string(name, None, "", flag_values=values)
    for name in ("num_processes", "process_id", "repeats", "inception_batch",
                 "score_train_batch"):
        flags.DEFINE_integer(name, None, "", flag_values=values)
    flags.DEFINE_string("weights", None, "", flag_values=values)
    flags.DEFINE_list("dtypes", None, "", flag_values=values)
    try:
        values(["prog", *args])
        values.config.to_dict()
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"{source}: `{' '.join(args)}` is refused: {err}") from err


@pytest.mark.parametrize("path", configs.config_files(), ids=lambda p: p.name)
def test_docstring_commands_run_as_written(path, monkeypatch):
    """Every `python -m launch.*` command in the docstring parses with that entry point's own
    flags (config overrides included), and every `--config=` / `--config.field=` mentioned in
    the prose names a variant / field that exists."""
    commands = docstring_commands(path)
    assert commands, f"{path.name} has no command in its docstring"
    for cmd in commands:
        module, args = cmd[0], cmd[1:]
        if module in ("launch.main", "launch.benchmark"):
            check_main_command(args, path.name, monkeypatch)
        elif module == "launch.convert":
            parsed = convert_cli.parser().parse_args(args)
            for name in ("flags", "head_flags"):
                value = getattr(parsed, name)
                if value and value.strip().startswith("{"):
                    convert_cli.read_flags(value, f"--{name}")
        elif module == "launch.evaluate":
            evaluate_cli._parser().parse_args(args)
        else:
            raise AssertionError(f"{path.name}: unknown entry point {module}")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    for spec in re.findall(r"--config=(configs/[\w.]+(?::[\w,=.]+)?)", doc):
        config_keys(spec)
    keys = config_keys(f"configs/{path.name}")
    for field in re.findall(r"--config\.([\w.]+?)=", doc):
        assert field in keys, f"{path.name} mentions --config.{field}, which it does not have"
