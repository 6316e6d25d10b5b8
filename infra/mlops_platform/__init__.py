"""Code shared by every component: settings, errors, registry and object-store access, metric names.

It lives in ``infra/`` beside the configuration of the platform components it talks to
(MLflow, MinIO, Pushgateway) and imports nothing from the other ``mlops_*`` packages.
"""
