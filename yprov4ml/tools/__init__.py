"""The user's tools over recorded runs: the CLI, compare, plot, report, reproduce, recover."""
