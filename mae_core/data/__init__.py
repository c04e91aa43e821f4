"""Data: the natural-image corpus builder and dataset helpers."""
