"""Fixtures of this project's tests come from mlops-runtime's pytest plugin (mlops_runtime.testing): `project`,
`task`, `sample`, `contract`, `tuning_data`, `service_root`, `config`. Add your own here."""
