"""The command line: commands, text output and plots."""

from adapters.cli.main import main

__all__ = ["main"]
