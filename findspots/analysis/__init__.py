"""Per-image analysis of a spot list: counts off the ice rings, intensities, resolution estimates."""
