"""nbgrader settings for the collab-kit course. The course root is this folder."""
from pathlib import Path

c = get_config()  # noqa: F821  (nbgrader injects get_config)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "collab-kit"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = f"sqlite:///{Path(__file__).resolve().parent / 'gradebook.db'}"

# Students' stubs: the docstring above each stub says what to write.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError(\"Write your answer here, as the text above describes.\")"
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# One cell may train a model for up to a minute on a laptop; nbgrader reads Execute.timeout
# before ExecutePreprocessor.timeout, so both are set.
c.Execute.timeout = 300
c.ExecutePreprocessor.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = False

# fastai's lr_find leaves a models/ folder beside a notebook run in place; never release it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "models", "*.pth"]

# Release only the notebooks (and nothing the instructor keeps next to them).
c.GenerateAssignment.create_assignment = True
c.ClearHiddenTests.enforce_metadata = True
c.ClearMarkScheme.enforce_metadata = True
