"""hack/create-dev-secrets.sh keeps generated secrets off the kubectl command line.

Without a cluster, ``kubectl`` on PATH is a recording wrapper: it logs every argv, answers ``get``
with "not found" and keeps what ``apply -f -`` receives; everything else (``create secret
--dry-run=client``, ``label --local``) runs the real kubectl, offline, against a kubeconfig whose
context points at an unused loopback port.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from support.gitops import REPO

from mlops_platform import environments

TOKEN = "ghp_dev-secret-token-0123456789"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: kind-mlops, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: kind-mlops, user: {token: unused}}]
contexts: [{name: kind-mlops, context: {cluster: kind-mlops, user: kind-mlops}}]
current-context: kind-mlops
"""


def test_secrets_go_through_files_not_the_command_line(tmp_path: Path) -> None:
    real = shutil.which("kubectl")
    if real is None or shutil.which("openssl") is None:
        pytest.skip("needs kubectl and openssl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kubectl"
    wrapper.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >>"{tmp_path}/argv.log"
case " $* " in
  *" get "*) exit 1 ;;
  *" apply "*) cat >>"{tmp_path}/applied.yaml"; printf '%s\\n' --- >>"{tmp_path}/applied.yaml"; exit 0 ;;
  *" create namespace "*) exit 0 ;;
esac
exec {real} "$@"
""")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECONFIG": str(tmp_path / "kubeconfig"),
           "PROMOTION_BOT_GIT_TOKEN": TOKEN}
    result = subprocess.run(["bash", str(REPO / "hack" / "create-dev-secrets.sh")], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    secrets = {doc["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
               for doc in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if doc}
    assert {"mlflow-db", "minio-root", "mlops-s3", "grafana-admin", "promotion-bot-git",
            "alertmanager-receivers"} <= set(secrets)
    # One API-key Secret per environment of the list; a replay key where the environment's secrets
    # ask for one (staging's holdout-replay analysis).
    assert {f"model-api-keys-{env}" for env in environments.names()} <= set(secrets)
    assert "model-replay-api-key-staging" in secrets and "model-replay-api-key-production" not in secrets
    assert secrets["promotion-bot-git"]["token"] == TOKEN
    assert len(secrets["mlflow-db"]["password"]) == 48
    argv = (tmp_path / "argv.log").read_text()
    values = [v for secret in secrets.values() for v in secret.values() if len(v) >= 8]
    leaked = sum(value in argv for value in values)  # a count: the values themselves stay out of the report
    assert leaked == 0, f"{leaked} of {len(values)} secret values were on a kubectl command line"
    assert "--from-literal" not in argv
