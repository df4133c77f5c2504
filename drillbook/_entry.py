"""The `drillbook` command's entry point: for `run` and `plan`, a kernel is launched before
anything heavy is imported, so that its start-up (and the checks library it preloads)
overlaps the command's own: typer, rich, nbclient, the policy."""

from __future__ import annotations

import sys


def main() -> None:
    kernel = None
    if sys.argv[1:2] in (["run"], ["plan"]):
        from drillbook.kernels import CORE, launch

        kernel = launch(preload=CORE)
    from drillbook import cli

    cli.main(early_kernel=kernel)
