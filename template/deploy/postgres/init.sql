-- The team stack's databases (compose.yaml), one per part, so that each can be backed up, restored
-- or moved on its own. PostgreSQL's image runs this once, when its data volume is empty; all are
-- owned by POSTGRES_USER.
CREATE DATABASE mlflow;       -- MLflow's runs and model registry (the tracking server's backend store)
CREATE DATABASE optuna;       -- the tuning study (OPTUNA_STORAGE)
CREATE DATABASE predictions;  -- the prediction log (SERVE_PREDICTION_LOG_URL)
