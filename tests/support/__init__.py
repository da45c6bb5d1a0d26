"""Helpers shared by test modules that are not fixtures of the whole suite (images, services)."""
