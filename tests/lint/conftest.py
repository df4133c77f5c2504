"""The fixture trees are data for the linter, not tests: never collect them.

They hold `notebooks/*.py` (which the drillbook plugin would run as runbooks)
and `tests/drills/test_*.py` (which pytest would import).
"""

collect_ignore_glob = ["fixtures/*"]
