"""``wascc completions SHELL``: the shell completion script for wascc.

Install it once, e.g. ``wascc completions bash > ~/.local/share/bash-completion/
completions/wascc`` (bash), ``wascc completions zsh > "${fpath[1]}/_wascc"``
(zsh) or ``wascc completions fish > ~/.config/fish/completions/wascc.fish``.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from wascc.cli.main import main

__all__ = ["completions"]

SHELLS = ("bash", "zsh", "fish")


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completions(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    Example:
      wascc completions bash > ~/.local/share/bash-completion/completions/wascc
      wascc completions fish > ~/.config/fish/completions/wascc.fish
    """
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.BadParameter(f"no completion support for {shell}")
    click.echo(cls(main, {}, "wascc", "_WASCC_COMPLETE").source())
