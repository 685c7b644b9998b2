"""Test helpers: a v4 index writer and a brute-force reference of every query."""
