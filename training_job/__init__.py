"""training_job."""
