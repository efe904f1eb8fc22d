"""The library's checks, run against a project: `pytest --pyargs mlops_runtime.checks` (the project's
`scorecard` runs those marked ml_test_score as evidence). Fixtures come from mlops_runtime.testing."""
