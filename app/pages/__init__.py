"""App pages."""
