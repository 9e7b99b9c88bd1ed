"""Checkpoint-indexed analysis of how latent structure moves over training."""
