"""Sphinx configuration of the meanfield documentation."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the docs build draws figures off screen

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import meanfield  # noqa: E402

project = "meanfield"
author = "the meanfield developers"
copyright = "2026, the meanfield developers"  # noqa: A001
release = meanfield.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "configref",
]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # CHANGELOG.md starts its entries at level 3

nitpicky = True
# numpydoc's free-text type words ("optional", "array-like", "default ...") are not objects
nitpick_ignore_regex = [
    ("py:class", r"optional|default.*|array[-_ ]like|shape.*|.*\(.*|of|or|and|callable"),
    ("py:class", r"(numpy\.)?ndarray|np\.ndarray|np\.random\.Generator|NDArray.*"),
    # other projects' objects (no inventories are fetched: the build runs offline)
    ("py:(class|func|meth|mod|obj|exc)",
     r"(matplotlib|mpl|xarray|xr|numpy|np|scipy|ot|dask|distributed|numba|pathlib|os|tqdm)"
     r"(\..*)?|Path|Figure|Axes|Dataset|DataArray|Generator|PathLike"),
]
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = f"meanfield {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples/*.rst"]  # gallery sources
