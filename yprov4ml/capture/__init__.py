"""What a run is made of, captured on its own: source, environment, datasets, models."""
