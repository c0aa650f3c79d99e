"""Publication: metadata, RO-Crates, model cards."""
