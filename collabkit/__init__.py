"""collab-kit: an autograded nbgrader assignment on collaborative filtering with fastai.

Each stage of the pipeline lives in one module:
data (MovieLens offline), reference (executed solutions), release (student notebooks),
grade (autograde, feedback, export), bench (timings). `nb` is what the notebooks import.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the course root: source/, release/, solutions/
ASSIGNMENT = "collab_filtering"
