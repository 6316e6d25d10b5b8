"""The jobs run by Argo Workflows (training, and later batch inference, drift, promotion) and the `mlops` CLI."""
