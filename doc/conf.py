"""Sphinx configuration of the skbutterfly documentation.

Build (offline, warnings as errors, gallery included) from the project root::

    bash doc/build.sh

``DOCS_ONLINE=1`` turns on intersphinx links to Python, NumPy, SciPy,
scikit-learn and Matplotlib (needs network access).
"""

import os
import sys
from pathlib import Path

import skbutterfly

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ONLINE = os.environ.get("DOCS_ONLINE", "") not in ("", "0")

# -- Project -----------------------------------------------------------------
project = "skbutterfly"
author = "The skbutterfly developers"
copyright = "The skbutterfly developers, BSD-3-Clause"
version = release = skbutterfly.__version__

# -- General -----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.extlinks",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # A local copy of MathJax 3 (copied to _static/mathjax): math renders
    # without a network, where the default would load MathJax from a CDN.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_design",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- API reference -------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
extlinks = {"arxiv": ("https://arxiv.org/abs/%s", "arXiv:%s")}


def _class_signature(app, what, name, obj, options, signature, return_annotation):
    """Show ``__init__``'s signature for classes whose base defines ``__new__``.

    ``ButterflyOperator`` inherits ``LinearOperator.__new__(cls, *args,
    **kwargs)``, which autodoc would otherwise show as the signature.
    """
    if what == "class" and signature == "(*args, **kwargs)":
        import inspect

        sig = inspect.signature(obj.__init__)
        params = list(sig.parameters.values())[1:]  # drop self
        return str(sig.replace(parameters=params)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", _class_signature)
    app.connect("missing-reference", _offline_missing_reference)


# -- Cross-references ------------------------------------------------------------
if ONLINE:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
else:
    intersphinx_mapping = {}


def _offline_missing_reference(app, env, node, contnode):
    """Offline, let references into scikit-learn's docs render as plain text.

    Without inventories, scikit-learn glossary terms (``:term:`fit```) and the
    labels used in the docstrings of inherited scikit-learn methods
    (``set_output``, ``get_metadata_routing``) cannot resolve. Only those are
    kept as plain text: a broken reference anywhere else still fails the build.
    """
    if ONLINE:
        return None
    source, parent = "", node
    while parent is not None and not source:
        source = getattr(parent, "source", None) or ""
        parent = parent.parent
    if node.get("reftype") == "term" or "docstring of sklearn." in source:
        return contnode
    return None


# -- HTML --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skbutterfly {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"index": [], "getting_started": [], "comparison": []}
html_show_sourcelink = True

# -- Plots in the user guide (matplotlib's plot directive) -------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True}

# -- Gallery -----------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skbutterfly",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skbutterfly": None},
    "plot_gallery": "True",
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
    "write_computation_times": False,
    "capture_repr": ("_repr_html_", "__repr__"),
}


# -- Benchmark report (optional) -------------------------------------------------
# ``generated/benchmarks.inc`` shows ``benchmarks/results/results.md`` on the
# performance page when the benchmark suite has been run, and says how to run
# it otherwise: the build never depends on the results being there.
sys.path.insert(0, str(HERE))
from _benchmarks import write_include

# DOCS_BENCHMARK_RESULTS points at another results folder (to try a report).
_results = os.environ.get("DOCS_BENCHMARK_RESULTS", ROOT / "benchmarks" / "results")
write_include(_results, HERE / "generated" / "benchmarks.inc", HERE)
