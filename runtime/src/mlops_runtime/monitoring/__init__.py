"""Monitoring: the reference profile saved with each model, drift and quality statistics, the job, its report."""
