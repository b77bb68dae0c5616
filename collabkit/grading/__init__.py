"""Grading a class, split by where the code runs (see each module's first line)."""
