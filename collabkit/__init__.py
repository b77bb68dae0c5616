"""collab-kit: an autograded nbgrader assignment on collaborative filtering with fastai.

The course is the folder you stand in (course.py). Each stage of the pipeline lives in one
module: data (MovieLens offline), reference (executed solutions), release (student notebooks),
grade (autograde, feedback, export), bench (timings). `nb` is what the notebooks import.
"""

ASSIGNMENT = "collab_filtering"
