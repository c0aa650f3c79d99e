"""The explorer: a local, read-only web application over the runs and workflows under a root."""
