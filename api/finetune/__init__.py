"""Fine-tuning: datasets, the training recipe, evaluation."""
