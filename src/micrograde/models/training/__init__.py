"""Fine-tuning: the recipe, the loop, data-parallel training, the cache dataset, one training run."""
