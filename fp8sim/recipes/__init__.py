"""Recipes: fine-grained quantization and float-to-FP8-to-float matmul pipelines."""
