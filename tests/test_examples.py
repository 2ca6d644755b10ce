"""The gallery is well formed; running it is the documentation build's job.

``bash doc/build.sh`` (run by ``.ci/run``) executes every ``examples/plot_*.py``
through sphinx-gallery and fails on any error or warning; running them here as
well cost 85 s of every default test run.
"""

import ast
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))


def test_the_gallery_has_examples_and_a_readme():
    assert len(SCRIPTS) >= 5
    assert (EXAMPLES / "README.txt").is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_is_valid_python_with_an_rst_docstring(script):
    tree = ast.parse(script.read_text(), filename=str(script))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{script.name} must start with its rst docstring"
    lines = [line.strip() for line in docstring.splitlines()]
    if set(lines[0]) == {"="}:  # an overline
        lines = lines[1:]
    title, underline = lines[:2]
    assert title and set(underline) == {"="}, (
        f"{script.name}: the docstring must open with a title underlined by '='"
    )
