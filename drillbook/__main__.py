"""`python -m drillbook`: the same as the `drillbook` command."""

from drillbook.cli import main

main()
