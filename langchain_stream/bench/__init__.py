"""Benchmarks behind ``stream bench``: each returns one JSON-ready dict of figures."""
