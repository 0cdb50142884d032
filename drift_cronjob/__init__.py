"""drift_cronjob."""
