"""Shared core of ml-pipeline: config, errors, logging, database and storage.

Every component (training_job, predictor, operator, drift_cronjob) imports this package; it imports none of them.
"""

__version__ = "0.1.0"
