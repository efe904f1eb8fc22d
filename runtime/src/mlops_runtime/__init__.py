"""mlops-runtime: the machinery of a copier-mlops project, imported rather than copied.

A generated project owns its data access, features, model candidates, params.yaml, schema.yaml and
dvc.yaml, and runs each pipeline stage as a short recipe over this library: the contract and its
validation, the stage machinery, tuning, the acceptance gate, the registry, the prediction service,
batch prediction, monitoring, explanations and the ML Test Score.
"""
