"""drillbook: the tooling around the runbooks: runner, CLI, site macros, pytest plugin."""
