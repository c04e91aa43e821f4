"""Benchmarks (`mae bench`): each prints a table and writes JSON; none is a timed test."""
