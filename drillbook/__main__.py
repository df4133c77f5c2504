"""`python -m drillbook`: the same as the `drillbook` command."""

from drillbook._entry import main

main()
