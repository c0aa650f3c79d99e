"""What reaches the disk while a run trains: metric files, the journal, atomic file writes, names."""
