"""notebooks/: each .ipynb is committed without outputs and holds the cells of its jupytext .md
pair; each installs dg_jax when it is missing and reads DG_JAX_NOTEBOOK_SMOKE. (The notebooks
themselves run in the suite through `pytest --nbmake notebooks`.)"""
import json
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("dg_2d", "pretrained_dg", "fashion_dg", "diffusion_gan")


def test_every_notebook_has_its_markdown_pair():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.md")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_no_outputs_and_matches_its_pair(name):
    jupytext = pytest.importorskip("jupytext")
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{name}.ipynb is committed with outputs: clear them (jupyter nbconvert "
                "--clear-output, or regenerate it: jupytext --to ipynb notebooks/*.md)")
    pair = jupytext.read(NOTEBOOKS / f"{name}.md")

    def cells(notebook):
        return [(c["cell_type"], "".join(c["source"]).strip()) for c in notebook["cells"]]

    assert cells(nb) == cells(pair), (f"{name}.ipynb and {name}.md differ: edit the .md and run "
                                      "`jupytext --to ipynb` (or `jupytext --sync`)")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_installs_dg_jax_and_has_a_smoke_size(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert 'find_spec("dg_jax")' in code[0] and "pip" in code[0] and "device_count" in code[0]
    assert any('"DG_JAX_NOTEBOOK_SMOKE"' in c for c in code)
