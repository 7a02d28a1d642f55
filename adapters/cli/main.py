"""The `budget-solve` command: the group, its default command, and the entry point."""

import logging
import sys
from collections.abc import Sequence

import click

from adapters.cli.apply import apply
from adapters.cli.options import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from adapters.cli.plan import plan
from adapters.cli.studies import fleet, scenario
from solver.errors import BudgetSolveError


class DefaultGroup(click.Group):
    """A group whose bare form runs `plan`: `budget-solve --limit 9G ...` is
    `budget-solve plan --limit 9G ...`. Only --debug and --help belong to the group."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((i for i, a in enumerate(args) if a != "--debug"), None)
        word = args[first] if first is not None else None
        if word is not None and word not in self.commands and word not in ("-h", "--help"):
            if not word.startswith("-"):
                # `plan` takes no bare words: this was meant as a command.
                commands = ", ".join(sorted(self.commands))
                raise click.UsageError(f"no command {word!r} (commands: {commands})")
            args.insert(first, "plan")  # type: ignore[arg-type]
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Log what happens, and show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Upgrade NixOS and Nix profiles on disks too small for both systems at once.

    Plans the fewest intermediate generations whose every step fits a disk budget, and
    applies them one by one, collecting garbage in between. Without a command, `plan`:
    `budget-solve --limit 9G --target SRC` is `budget-solve plan --limit 9G --target SRC`.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s"
    )


for _command in (plan, apply, scenario, fleet):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line `error: ...` for bad input, tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="budget-solve", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        if debug:
            raise
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(EXIT_INPUT)
    except BudgetSolveError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INPUT)
    except OSError as e:
        if debug:
            raise
        click.echo(
            f"error: {e.strerror or e}: {e.filename}" if e.filename else f"error: {e}", err=True
        )
        sys.exit(EXIT_INPUT)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
