"""The ``wascc`` command line (click): it parses arguments and delegates.

Commands live in one module per group: :mod:`wascc.cli.up` (``wascc up``,
``wascc-host``), :mod:`wascc.cli.tools` (``keys``, ``claims``, ``inspect``,
``call``), :mod:`wascc.cli.ctl` (``ctl``, talking to a running host),
:mod:`wascc.cli.sdk` (``sdk``: the C headers and flags), and
:mod:`wascc.cli.completions` (``completions``: shell completion scripts),
:mod:`wascc.cli.dev` (``dev``: rebuild, sign and hot-swap on every change),
:mod:`wascc.cli.lattice` (``lattice``: what a lattice runs, its events).
:mod:`wascc.cli.par` (``par``: signed provider archives).
"""

from __future__ import annotations

from wascc.cli import completions, ctl, dev, lattice, par, sdk, tools, up  # noqa: F401 - registers the commands
from wascc.cli.main import main
from wascc.cli.tools import render_manifest

__all__ = ["main", "render_manifest"]
