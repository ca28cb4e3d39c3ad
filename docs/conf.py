"""Sphinx configuration of cryonb's documentation: MyST pages, executed notebooks, API from docstrings."""

import importlib

import cryonb

project = "cryonb"
author = "the cryonb developers"
copyright = "the cryonb developers"
release = version = cryonb.__version__

extensions = [
    "myst_nb",  # Markdown pages and notebooks (executed at build time)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# The notebook folders' READMEs are for readers of the repository; notebooks.md introduces them here.
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "notebooks/README.md", "notebooks/**/README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["cryonb.css"]

html_theme = "pydata_sphinx_theme"
html_title = f"cryonb {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"benchmarks": [], "getting_started": [], "cli": []}  # single pages: no section navigation

myst_enable_extensions = ["dollarmath"]  # $...$ maths in the Markdown pages

# Notebooks run when the site is built, each in a temporary folder (they write their outputs
# next to themselves); results are cached by cell source, so unchanged notebooks are not run again.
# `make docs` runs them side by side into that cache first (run_notebooks.py, same settings).
nb_execution_mode = "cache"
nb_execution_in_temp = True
nb_execution_timeout = 600  # per cell
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars and library warnings, not results
# HoloViews' notebook bootstrap outputs carry mime types of their own next to the JavaScript that
# is rendered; myst-nb warns about every such extra type while it parses.
suppress_warnings = ["mystnb.unknown_mime_type"]

# API reference: one page per module, generated from the docstrings.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_inherit_docstrings = False  # torch's forward() docs are not cryonb's
autodoc_typehints = "signature"  # the docstrings are prose, without parameter lists
autodoc_class_signature = "separated"
add_module_names = False
python_maximum_signature_line_length = 88

# Every cross-reference must resolve (-n with -W); types of other libraries are not documented here.
nitpicky = True
nitpick_ignore_regex = [("py:.*", r"(torch|numpy|scipy|pandas|matplotlib|os|pathlib|collections|ipywidgets)\..*"),
                        ("py:class", r"dict\[str")]  # a generic annotation split by its comma



def _python_object(dotted: str):
    """The object ``dotted`` names, imported as Python would (module prefix, then attributes); or None."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def resolve_as_python(app, env, node, contnode):
    """Resolve a cryonb name that Sphinx does not find the way a reader would, then link to its definition.

    Docstrings name objects as their module sees them: ``Run`` where it is imported, or
    ``cryonb.core.analysis.lasso_select`` for a re-export, while the API pages document each object
    once, in its defining module. Tried in turn: the name imported in the docstring's module, the
    name imported as it is, and a unique documented object of that name.
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target, module = node["reftarget"], node.get("py:module")
    for candidate in ([f"{module}.{target}"] if module else []) + [target]:
        obj = _python_object(candidate)
        if getattr(obj, "__module__", "").startswith("cryonb") and hasattr(obj, "__qualname__"):
            target = f"{obj.__module__}.{obj.__qualname__}"
            break
    matches = domain.find_obj(env, None, None, target, node["reftype"], searchmode=1)
    if len(matches) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], matches[0][0], node, contnode)


def setup(app):
    app.connect("missing-reference", resolve_as_python)
