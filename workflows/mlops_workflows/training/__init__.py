"""Training: config, data loading, evaluation, gate and the pipeline that ties them together."""
