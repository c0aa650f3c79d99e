"""Distributed runs: ranks, the run id they agree on, rank 0's collection, and prov-merge."""
