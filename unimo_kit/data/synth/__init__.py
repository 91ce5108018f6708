"""Synthetic world."""
