"""gradatlas: a reproducible benchmark of vanishing and exploding gradients."""

__version__ = "0.1.0"
