"""Every gallery example runs to the end and draws at least one figure."""

import os
import runpy
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("plot_*.py"))
# All five together take about 35 s on 2 busy cores. An example that grows past
# about 15 s should get ``marks=pytest.mark.slow`` here (the documentation
# build still runs it).


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything an example writes lands here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt.close("all")
    try:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
        assert plt.get_fignums(), f"{script} drew no figure"
    finally:
        plt.close("all")


def test_every_example_is_collected():
    assert len(SCRIPTS) >= 5
    for name in SCRIPTS:
        first = (EXAMPLES / name).read_text().lstrip().splitlines()[0]
        assert first.startswith('"""'), f"{name} must start with its rst docstring"
    assert os.path.isfile(EXAMPLES / "README.txt")
