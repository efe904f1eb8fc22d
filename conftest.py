"""For the whole test run, this repository's tests and the library's checks alike."""

import os

# Some machines set PYTHONDONTWRITEBYTECODE (this workplace's do). Then every process compiles again each module
# it imports: about 5 s for pandas, scikit-learn and MLflow, in each of the hundreds of stage and CLI processes
# the end-to-end tests start. Cached, the bytecode goes to the venvs the tests make and to git-ignored folders.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
