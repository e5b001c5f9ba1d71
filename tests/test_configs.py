"""The config files: `configs.common.parse_arg` (the one parser of `--config=PATH:ARG`), every
config building at its default and smoke sizes, and every config's docstring giving its full
command."""
import ast
import importlib
import itertools
import re

import pytest
from absl import flags
from ml_collections import config_flags

import configs
from configs.common import parse_arg

CONFIG_FILES = configs.config_files()


def _module(path):
    return importlib.import_module(f"configs.{path.stem}")


def test_parse_arg_flags_and_typed_values():
    defaults = dict(res=8, lr=1.0, name="x", flag=False)
    arg = parse_arg("smoke,res=32,lr=1e-3,name=foo,flag=True", allowed_flags=("cond", "smoke"),
                    **defaults)
    assert (arg.smoke, arg.cond, arg.res, arg.lr, arg.name, arg.flag) == (
        True, False, 32, 1e-3, "foo", True)
    assert isinstance(arg.res, int) and isinstance(arg.lr, float)
    for empty in (None, "", ","):
        arg = parse_arg(empty, allowed_flags=("smoke",), **defaults)
        assert not arg.smoke and arg.res == 8 and arg.name == "x"
    arg = parse_arg("cond, smoke,flag", allowed_flags=("cond", "smoke"), flag=False)
    assert arg.cond and arg.smoke and arg.flag
    assert parse_arg("smoke=false,lr=2", allowed_flags=("smoke",), lr=1.0).to_dict() == {
        "smoke": False, "lr": 2.0}


@pytest.mark.parametrize("arg, match", [
    ("smoke,big", r"test_configs.py: unknown config argument\(s\) \['big'\] .*allowed: cond, "
                  r"smoke, res=<int>, lr=<float>"),
    ("res=abc", r"bad value res='abc'.*expected int"),
    ("lr=fast", r"bad value lr='fast'.*expected float"),
    ("smoke=maybe", r"bad value smoke='maybe'.*expected bool"),
    ("res", r"'res' needs a value \(res=<int>\)"),
    ("smoke,smoke", r"'smoke' given twice"),
])
def test_parse_arg_errors_name_the_file_and_what_it_accepts(arg, match):
    with pytest.raises(ValueError, match=match):
        parse_arg(arg, allowed_flags=("cond", "smoke"), res=8, lr=1.0)


def test_parse_arg_names_the_config_file_it_is_given():
    with pytest.raises(ValueError, match=r"configs/toy2d.py: .*\['cond'\].*allowed: smoke"):
        parse_arg("cond", allowed_flags=("smoke",), config_file="/x/configs/toy2d.py")
    with pytest.raises(ValueError, match="takes no argument"):
        parse_arg("smoke", config_file="/x/configs/toy2d.py")
    with pytest.raises(TypeError):
        parse_arg("", res=[8])


def test_helper_modules_are_not_configs_and_every_config_is_listed():
    names = {p.name for p in CONFIG_FILES}
    assert not {"common.py", "__init__.py"} & names
    assert not any(n.startswith("default_") for n in names)
    assert len(names) >= 12
    text = configs.describe()
    for path in CONFIG_FILES:
        variants = configs.variants_of(path)
        assert f"configs/{path.name}" + (f"[:{'|'.join(variants)}]" if variants else "") in text


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_builds_with_each_variant(path):
    module = _module(path)
    variants = configs.variants_of(path)
    assert "smoke" in variants, f"{path.name} has no smoke variant"
    default = module.get_config()
    assert default.pipeline and default.seed == 0 and default.to_dict()
    assert module.get_config("").to_dict() == default.to_dict()
    for r in range(1, len(variants) + 1):
        for combo in itertools.combinations(variants, r):
            config = module.get_config(",".join(combo))
            assert config.pipeline == default.pipeline
    with pytest.raises(ValueError, match=rf"configs/{path.name}: unknown config argument"):
        module.get_config("smoke,bogus")


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_docstring_has_the_full_command(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    joined = re.sub(r"\\\n\s*", " ", doc)
    commands = [line.strip() for line in joined.splitlines()
                if line.strip().startswith(f"python -m launch.main --config=configs/{path.name}")]
    assert commands, f"{path.name}: no `python -m launch.main --config=configs/{path.name}` line"
    assert any(re.search(rf"--config=configs/{path.name}(\s|$)", c) and "--workdir=" in c
               for c in commands), f"{path.name}: no full command for the default config"
    assert f"configs/{path.name}:smoke" in doc or re.search(r":\w*,?smoke", doc)


def _lists(tree, prefix=""):
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _lists(v, f"{prefix}{k}.")]
    if isinstance(tree, list):
        return [prefix.rstrip(".")]
    if isinstance(tree, tuple):
        return [p for i, v in enumerate(tree) for p in _lists(v, f"{prefix}{i}.")]
    return []


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_holds_tuples_not_lists(path):
    # ml_collections' config flags refuse to override a list field from the command line
    for arg in ("", "smoke"):
        config = _module(path).get_config(arg)
        assert _lists(config.to_dict()) == [], f"{path.name}:{arg}: list fields cannot be overridden"


def test_the_command_line_overrides_a_sequence_field():
    path = configs.config_files()[0].parent / "fashion_guidance.py"
    argv = ["prog", f"--config={path}:smoke", "--config.sweep.cg_weights=(10.0, 30.0)",
            "--config.sweep.cg_samplers=ddim", "--config.redo=('cfg_dg',)"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=values,
                                    lock_config=True, sys_argv=argv)
    values(argv)
    config = values.config
    assert config.sweep.cg_weights == (10.0, 30.0)
    assert config.sweep.cg_samplers == ("ddim",)
    assert config.redo == ("cfg_dg",)
    assert config.sweep.cfg_weights == (0.0, 2.0)  # the smoke variant's, untouched
