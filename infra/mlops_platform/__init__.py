"""Code shared by every component: settings, errors, registry and object-store access, metric names.

It lives in ``infra/`` beside the configuration of the platform components it talks to
(MLflow, MinIO, Pushgateway) and imports nothing from the other ``mlops_*`` packages.
"""

import os as _os

# Nothing in this project phones home: MLflow 3 sends usage telemetry unless told not to.
# Set MLFLOW_DISABLE_TELEMETRY=false explicitly to opt back in.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
