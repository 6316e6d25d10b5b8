"""The jobs Argo Workflows runs (training; later batch inference, drift, promotion) and the `mlops` CLI."""
