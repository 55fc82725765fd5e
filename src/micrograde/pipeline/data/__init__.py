"""Training data: splits, balancing, augmentation, diversity, metrics."""
