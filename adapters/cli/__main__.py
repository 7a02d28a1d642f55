"""`python -m adapters.cli`: the `budget-solve` command."""

from adapters.cli.main import main

main()
