"""Datasets, training loop, evaluation and plots. Imports model/, never handler/ or gateway/."""
