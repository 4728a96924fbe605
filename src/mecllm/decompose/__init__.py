"""Solving a fine-tuning field by regions in parallel (docs/regions.md)."""
