"""Training job: a dataset in, a versioned model out (storage + MLflow registry + database records).

Run it with `python -m training_job --help`. Modules, one job each: cli (flags), config (resolved run settings),
data (loading), cleaning, splitting, stats, tokenization, training (transformers Trainer), evaluation, tracking
(MLflow runs, registry, aliases), search (Optuna), checkpoints (sync to storage, resume), publishing (model card,
reference sample, storage version), records (database rows), pipeline (the order of the steps).
"""
