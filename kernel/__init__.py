"""Gofer's kernel: the bottom layer, which imports no app (docs/architecture.md, "Layers")."""
