"""CycleGAN training. Imports cg_export.models for the generators; cg_export never imports training."""
