"""Sphinx configuration for the kodmobi-async documentation.

Built by ``nox -s docs`` as ``sphinx-build -W --keep-going -n``: every warning fails the
build and every cross-reference must resolve.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

project = "kodmobi-async"
author = "kodmobi-async developers"
copyright = "kodmobi-async developers"
release = _version("kodmobi-async")
version = ".".join(release.split(".")[:2])

# docs/_ext holds the `kodmobi` directive, which shows the command line's real output.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "kodmobi_cli",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples", "_ext"]
nitpicky = True

# -- MyST --------------------------------------------------------------------------
# Anchors for headings down to ###, so pages can link to [a section](#a-section).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# -- autodoc + napoleon (Google-style docstrings) ---------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Return types come from the annotations (autodoc_typehints); napoleon's own would turn
# a "Returns:" line that contains a colon into a bogus cross-reference.
napoleon_use_rtype = False

# -- HTML --------------------------------------------------------------------------
html_theme = "furo"
html_title = f"kodmobi-async {release}"

# -- Outside names -------------------------------------------------------------------
# intersphinx would fetch inventories over the network, which our CI does not have, so
# the few standard-library and aiohttp names the pages mention are linked by hand here.
# A name missing from this table still fails the nitpicky build: add it with its URL.
_PYTHON = "https://docs.python.org/3/library/"
_AIOHTTP = "https://docs.aiohttp.org/en/stable/"
EXTERNAL_TARGETS: dict[str, str] = {
    "asyncio.CancelledError": _PYTHON + "asyncio-exceptions.html#asyncio.CancelledError",
    "asyncio.Queue": _PYTHON + "asyncio-queue.html#asyncio.Queue",
    "asyncio.Queue.get": _PYTHON + "asyncio-queue.html#asyncio.Queue.get",
    "asyncio.sleep": _PYTHON + "asyncio-task.html#asyncio.sleep",
    "collections.abc.AsyncIterable": _PYTHON + "collections.abc.html#collections.abc.AsyncIterable",
    "collections.abc.AsyncIterator": _PYTHON + "collections.abc.html#collections.abc.AsyncIterator",
    "collections.abc.AsyncGenerator": _PYTHON
    + "collections.abc.html#collections.abc.AsyncGenerator",
    "collections.abc.Callable": _PYTHON + "collections.abc.html#collections.abc.Callable",
    "collections.abc.Iterable": _PYTHON + "collections.abc.html#collections.abc.Iterable",
    "collections.abc.Iterator": _PYTHON + "collections.abc.html#collections.abc.Iterator",
    "collections.abc.Mapping": _PYTHON + "collections.abc.html#collections.abc.Mapping",
    "time.monotonic": _PYTHON + "time.html#time.monotonic",
    "datetime.datetime": _PYTHON + "datetime.html#datetime.datetime",
    "ssl.SSLContext": _PYTHON + "ssl.html#ssl.SSLContext",
    "aiohttp.ClientSession": _AIOHTTP + "client_reference.html#aiohttp.ClientSession",
}


def _link_external(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve a reference to a name of :data:`EXTERNAL_TARGETS` to its page."""
    if node.get("refdomain") != "py":
        return None
    url = EXTERNAL_TARGETS.get(node.get("reftarget", ""))
    if url is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=url)
    reference.append(contnode)
    return reference


def _link_type_alias(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Let an annotation find a type alias (``Outcome``), as Sphinx 9 does by itself.

    Annotations become ``py:class`` references, and before Sphinx 9 those do not match
    objects documented with ``py:type``; the Python versions this project supports
    include 3.10, whose newest Sphinx is 8.1.
    """
    if node.get("refdomain") != "py" or node.get("reftype") != "class":
        return None
    domain = env.get_domain("py")
    target = node.get("reftarget", "")
    return domain.resolve_xref(env, node["refdoc"], app.builder, "type", target, node, contnode)


def _check_external_targets() -> None:
    """Every name in the table must exist, so a typo cannot hide behind a link."""
    for dotted in EXTERNAL_TARGETS:
        parts = dotted.split(".")
        for split in range(len(parts) - 1, 0, -1):  # the longest importable module
            try:
                obj: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
            break
        else:
            msg = f"EXTERNAL_TARGETS names {dotted!r}, which cannot be imported"
            raise ImportError(msg)


def setup(app: Sphinx) -> None:
    """Register the outside-name resolver, and the ``fixture`` directive and role."""
    _check_external_targets()
    app.connect("missing-reference", _link_external)
    app.connect("missing-reference", _link_type_alias)
    # pytest fixtures are neither functions nor data: document them as what they are.
    app.add_object_type("fixture", "fixture", "pair: %s; fixture")
