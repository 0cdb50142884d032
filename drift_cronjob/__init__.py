"""drift_cronjob: Evidently drift, feedback quality and request volume checks over the logged predictions.

`python -m drift_cronjob` (a Kubernetes CronJob): for each active deployment version in model_deployments, the
window of prediction_logs since the last successful run is compared with the version's reference.parquet (or a
window of earlier logs); results go to dataset_metrics, monitoring_alerts, drift_runs, an HTML report in storage
(reports/<deployment>/<timestamp>_v<version>.html), a Pushgateway and an alert webhook when configured.
"""
