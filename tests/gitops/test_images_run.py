"""The three images, built for real from the working tree and run as the kind manifests run them.

No Docker engine here: podman builds them through hack/build-images.sh (the script hack/kind-up.sh
uses with docker), from stand-in base images (hack/build-standin-base.sh: Debian's python3 on a
debootstrap of the Dockerfiles' Debian release, passed through their PYTHON_IMAGE build argument),
because the registries' base images cannot be pulled. Each container then runs the command and
environment its rendered manifest gives it (tests/support/podexec.py), as the image's non-root user,
with a read-only root filesystem and a tmpfs at /tmp (the manifests' emptyDir), all capabilities
dropped, on the host network so that it reaches the loopback services: PostgreSQL and SeaweedFS run
as local processes in place of CloudNativePG and MinIO. The only changes to the rendered commands are
the stated service-address overrides (and the model server's port and the prediction log's sampling,
stated where they are set).

- the MLflow image serves the tracking server on PostgreSQL + S3 and answers ``/health``;
- the jobs image runs the ``train`` step against it (a version registered, its gate passed);
- the model server image, with production pinned to that version (what the first promotion commits),
  loads it from the tracking server and answers predictions, and writes its prediction log to S3;
- the jobs image runs the ``drift`` step on that log: exit 10, drift found;
- the three images pushed to Debian's docker-registry on loopback (the release push), their digests
  pinned in a copy of prod-example by mlops_gitops.manifests.digest_pins: every project image it
  renders runs that digest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from support.gitops import project_images
from support.oci_registry import oci_registry
from support.podexec import PodCommand, render
from support.procs import integration_required, require_binary, wait_for_http
from support.project import REPO

from mlops_gitops.manifests import digest_pins

# Builds three images (minutes each on a shared machine), then runs them: beyond the suite's 600 s default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

MODEL = "wine-classifier"
MLFLOW_SVC = "http://mlflow.mlops.svc.cluster.local:5000"
MINIO_SVC = "http://minio.mlops.svc.cluster.local:9000"
PUSHGATEWAY_SVC = "http://prometheus-pushgateway.monitoring.svc.cluster.local:9091"
DB_HOST = "mlflow-db-rw.mlops.svc.cluster.local:5432"
USER = "10001:10001"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json",
                   "application/vnd.docker.distribution.manifest.list.v2+json")


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "lib" / "containers.conf"))
    return env


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=_engine_env(),
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def images(request: pytest.FixtureRequest) -> dict[str, str]:
    """Image name (model-server, mlops-jobs, mlflow-server) -> the built image reference."""
    for binary in ("podman", "debootstrap", "runc"):
        require_binary(binary)
    if os.geteuid() != 0:
        message = "debootstrap (the stand-in base image) needs root"
        if integration_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    base = subprocess.run(["bash", str(REPO / "hack" / "build-standin-base.sh")], capture_output=True, text=True,
                          timeout=1200, env=_engine_env(), check=False)
    assert base.returncode == 0, base.stderr[-3000:]
    build_args = dict(line.split("=", 1) for line in base.stdout.split())
    env = {**_engine_env(), **build_args, "CONTAINER_ENGINE": "podman", "ENGINE_BUILD_FLAGS": "--network host"}
    built = subprocess.run(["bash", str(REPO / "hack" / "build-images.sh")], capture_output=True, text=True,
                           timeout=3000, env=env, check=False)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    lines = built.stdout.strip().splitlines()
    # The build script's summary: its last lines, from the header on (the engine's output comes first).
    table = lines[max(i for i, line in enumerate(lines) if line.startswith("image ")):]
    # Shown in every run, also a passing one (CI's log keeps the sizes and build times).
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print()
        for line in [*(f"stand-in base: {x}" for x in base.stderr.splitlines() if x.startswith("==>")), *table]:
            print(f"[images] {line}", flush=True)
    listed = subprocess.run(["bash", str(REPO / "hack" / "build-images.sh"), "--list"], capture_output=True,
                            text=True, check=True, env=env).stdout.split()[::2]
    return {ref.rsplit(":", 1)[0].rsplit("/", 1)[1]: ref for ref in listed}


@dataclasses.dataclass
class Container:
    name: str

    def logs(self) -> str:
        result = _podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def _run_args(pod: PodCommand, image: str, name: str, env_file: Path, mounts: Mapping[str, Path]) -> list[str]:
    """``podman run`` as the manifests run the pod: non-root, read-only root, tmpfs /tmp, no capabilities."""
    lines = []
    for key, value in pod.env.items():
        assert "\n" not in value, key
        lines.append(f"{key}={value}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    volumes = [a for target, source in mounts.items() for a in ("--volume", f"{source}:{target}:ro,Z")]
    return [
        "run", "--name", name, "--network", "host", "--ulimit", "host",
        "--read-only", "--tmpfs", "/tmp:rw,mode=1777", "--user", USER,
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--env-file", str(env_file), *volumes,
        "--entrypoint", json.dumps(pod.argv[:1]), image, *pod.argv[1:],
    ]


@dataclasses.dataclass
class Runner:
    work: Path
    started: list[str] = dataclasses.field(default_factory=list)

    def run(self, pod: PodCommand, image: str, timeout: float = 900,
            mounts: Mapping[str, Path] | None = None) -> subprocess.CompletedProcess[str]:
        name = f"mlops-test-{uuid.uuid4().hex[:10]}"
        self.started.append(name)
        args = _run_args(pod, image, name, self.work / f"{name}.env", mounts or {})
        return _podman(*args, timeout=timeout, check=False)

    def start(self, pod: PodCommand, image: str, mounts: Mapping[str, Path] | None = None) -> Container:
        name = f"mlops-test-{uuid.uuid4().hex[:10]}"
        self.started.append(name)
        args = _run_args(pod, image, name, self.work / f"{name}.env", mounts or {})
        _podman(args[0], "--detach", *args[1:])
        return Container(name)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(tmp_path)
    yield runner
    for name in runner.started:
        _podman("rm", "--force", "--time", "5", name, check=False, timeout=60)


def _wait(url: str, container: Container, timeout: float) -> None:
    try:
        wait_for_http(url, timeout=timeout)
    except RuntimeError as exc:
        raise AssertionError(f"{exc}\n--- {container.name}:\n{container.logs()[-4000:]}") from None


def _post(url: str, body: object, headers: Mapping[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with _NO_PROXY.open(request, timeout=60) as response:
        return int(response.status), json.loads(response.read())


def _wine_rows(rows: int, shift: Sequence[str]) -> list[list[float]]:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns=["target"])
    sample = frame.sample(rows, replace=True, random_state=7).reset_index(drop=True)
    for column in shift:
        sample[column] = sample[column] * 1.5
    return [[float(v) for v in row] for row in sample.to_numpy().tolist()]


def _pinned_production(tmp_path: Path, version: int) -> Path:
    """The production folder as the first promotion leaves it: MODEL_VERSION pinned."""
    copy = tmp_path / "serving-manifests"
    shutil.copytree(REPO / "serving" / "manifests", copy)
    release = copy / "models" / MODEL / "production" / "release.env"
    text = release.read_text()
    assert "\nMODEL_VERSION=\n" in text
    release.write_text(text.replace("\nMODEL_VERSION=\n", f"\nMODEL_VERSION={version}\n"))
    return copy / "models" / MODEL / "production"


def test_images_build_and_run_as_the_manifests_run_them(images: dict[str, str], runner: Runner,
                                                        tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from support.postgres import postgres_server
    from support.procs import free_port
    from support.prometheus import pushgateway_server
    from support.seaweedfs import seaweedfs_s3

    from mlops_serving.auth import generate_key

    for ref in images.values():
        user = _podman("image", "inspect", "--format", "{{.Config.User}}", ref).stdout.strip()
        assert user == USER, f"{ref} runs as {user!r}"

    with postgres_server(tmp_path / "pg") as pg, seaweedfs_s3(tmp_path / "s3") as s3, \
            pushgateway_server(tmp_path / "pgw") as gateway:
        pg.create_database("mlflow")
        for bucket in ("mlops-mlflow", "mlops-workflows", "mlops-production"):
            s3.make_bucket(bucket)
        s3_secret = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}

        # -- MLflow: the kind Deployment's container, its database and bucket on loopback
        mlflow_cluster = render(REPO / "clusters" / "kind" / "mlflow")
        deployment = mlflow_cluster.find("Deployment", "mlflow")
        mlflow_pod = mlflow_cluster.job_container(deployment, "mlflow", secrets={
            "mlflow-db": {"username": pg.user, "password": pg.password}, "mlops-s3": s3_secret})
        assert mlflow_pod.image == images["mlflow-server"]
        port = free_port()
        backend = f"--backend-store-uri=postgresql+psycopg2://{pg.user}:{pg.password}@"
        mlflow_pod = mlflow_pod.with_overrides({
            f"{backend}{DB_HOST}/mlflow": f"{backend}127.0.0.1:{pg.port}/mlflow",
            "--host=0.0.0.0": "--host=127.0.0.1",
            "--port=5000": f"--port={port}",
            MINIO_SVC: s3.endpoint_url,
        })
        mlflow = runner.start(mlflow_pod, mlflow_pod.image)
        tracking_uri = f"http://127.0.0.1:{port}"
        _wait(f"{tracking_uri}/health", mlflow, timeout=240)
        with _NO_PROXY.open(f"{tracking_uri}/health", timeout=10) as response:
            assert response.status == 200 and response.read().strip() == b"OK"
        # Only mlflow and its drivers: no project package in the MLflow image.
        probe = _podman("run", "--rm", "--network", "none", "--ulimit", "host", "--read-only",
                        "--entrypoint", '["python"]', images["mlflow-server"], "-c",
                        "import importlib.util as u; import psycopg2, boto3, mlflow.server; "
                        "print([m for m in ('mlops_platform', 'mlops_workflows', 'mlops_serving', 'mlops_drift') "
                        "if u.find_spec(m)])")
        assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr

        # -- train: the rendered kind `train` step in the jobs image, against that server
        workflows = render(REPO / "clusters" / "kind" / "workflow-templates")
        services = {MLFLOW_SVC: tracking_uri, MINIO_SVC: s3.endpoint_url}
        train = workflows.workflow_step("train", "train", parameters={"model": MODEL},
                                        secrets={"mlops-s3": s3_secret}).with_overrides(services)
        assert train.image == images["mlops-jobs"]
        trained = runner.run(train, train.image)
        assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]
        assert "gate passed: alias 'candidate' -> v1" in trained.stdout + trained.stderr
        # What finalizing the first production rollout records (the bot moves the alias).
        MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
            MODEL, "production", "1")

        # -- serve: the production Rollout's container with v1 pinned, in the model server image
        key, key_line = generate_key([MODEL])
        keys = tmp_path / "api-keys"
        keys.write_text(key_line + "\n")
        keys.chmod(0o644)
        production = render(_pinned_production(tmp_path, 1))
        [rollout] = production.of_kind("Rollout")
        serve = production.rollout_container(rollout["metadata"]["name"], "model-server",
                                             secrets={"model-store-credentials": s3_secret})
        # The shared folder names the registry image (kind renames it, test_kind_images); same tag as built.
        assert serve.image.rsplit(":", 1)[1] == images["model-server"].rsplit(":", 1)[1]
        serve = serve.with_overrides(services)
        serve_port = free_port()
        serve = dataclasses.replace(serve, env={
            **serve.env,
            # One test process per machine: a free port on loopback instead of 0.0.0.0:8080.
            "MLOPS_SERVING_HOST": "127.0.0.1", "MLOPS_SERVING_PORT": str(serve_port),
            # Log every prediction and flush often, so the drift step below has the whole traffic.
            "MLOPS_SERVING_PREDLOG_SAMPLE_RATE": "1", "MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S": "0.5",
        })
        assert serve.env["MLOPS_SERVING_MODELS"] == f"{MODEL}:1"
        server = runner.start(serve, images["model-server"], mounts={"/etc/mlops/api-keys/api-keys": keys})
        base = f"http://127.0.0.1:{serve_port}"
        _wait(f"{base}/readyz", server, timeout=240)
        with _NO_PROXY.open(f"{base}/readyz", timeout=10) as response:
            assert response.status == 200, server.logs()
        rows = _wine_rows(1200, shift=("alcohol", "proline", "color_intensity"))
        predicted = 0
        for start in range(0, len(rows), 100):
            status, answer = _post(f"{base}/models/{MODEL}/predict", {"features": rows[start:start + 100]},
                                   {"Authorization": f"Bearer {key}"})
            assert status == 200, answer
            predictions = answer["predictions"]
            assert isinstance(predictions, list) and len(predictions) == len(rows[start:start + 100])
            predicted += len(predictions)
        assert predicted == 1200
        _podman("stop", "--time", "30", server.name, timeout=90)  # SIGTERM: the log is flushed
        assert '"level"' in server.logs()

        # -- drift: the rendered `drift` step in the jobs image reads that log and finds the shift
        drift = workflows.workflow_step("drift-check", "drift", parameters={"model": MODEL},
                                        secrets={"mlops-s3": s3_secret})
        drift = drift.with_overrides({**services, PUSHGATEWAY_SVC: gateway.url})
        result = runner.run(drift, drift.image, timeout=600)
        assert result.returncode == 10, result.stdout[-4000:] + result.stderr[-4000:]
        # (a line of its own: MLflow's client, when a step uses it, prints its run links first)
        assert any(line.startswith(f"{MODEL} v1: DRIFT  (1,200 rows") for line in result.stdout.splitlines()), \
            result.stdout
        assert "View run" not in result.stdout  # the step reached the tracking server without MLflow's client
        assert f'model="{MODEL}"' in gateway.metrics_text()


def test_release_digests_pushed_to_a_registry_pin_every_project_image_of_prod_example(
        images: dict[str, str], tmp_path: Path) -> None:
    """The release path of .github/workflows/ci.yaml (job pin-digests), with Debian's docker-registry for
    ghcr.io: push the three images, take the digests the push returned, pin them with
    ``mlops_gitops.manifests.digest_pins``, render prod-example as Argo CD would: every project image
    is ``@<the digest pushed>``, and the registry serves that digest."""
    registry_dir = tmp_path / "registry"
    with oci_registry(registry_dir) as registry:
        refs = []
        for name, ref in sorted(images.items()):
            tag = ref.rsplit(":", 1)[1]
            digest_file = tmp_path / f"{name}.digest"
            _podman("push", "--tls-verify=false", "--digestfile", str(digest_file), ref,
                    f"{registry}/mlops-gitops/{name}:{tag}", timeout=900)
            digest = digest_file.read_text().strip()
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
            # The registry holds that manifest under that digest (what a runtime pulling by digest asks for).
            request = urllib.request.Request(f"http://{registry}/v2/mlops-gitops/{name}/manifests/{digest}",
                                             method="HEAD", headers={"Accept": ", ".join(_MANIFEST_TYPES)})
            with _NO_PROXY.open(request, timeout=30) as response:
                assert response.status == 200 and response.headers["Docker-Content-Digest"] == digest
            # The manifests name ghcr.io/mlops-gitops; the digest names the content wherever it is stored.
            refs.append(f"{digest_pins.MANIFEST_REPOSITORY}/{name}:{tag}@{digest}")
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", ".mlops", "__pycache__"))
    written = subprocess.run([sys.executable, "-m", "mlops_gitops.manifests.digest_pins", "--root", str(root),
                              "--cluster", "prod-example", "--from", "-"], input="\n".join(refs) + "\n",
                             capture_output=True, text=True, timeout=60, check=False)
    assert written.returncode == 0, written.stderr
    pushed = {ref.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[1]: ref.split("@")[1] for ref in refs}
    used = project_images(root, "prod-example", tmp_path)
    assert {i.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[1] for i in used} == set(pushed)
    for image, where in used.items():
        name = image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[1]
        assert image.endswith(f"@{pushed[name]}"), (image, sorted(where))
    print("\n".join(f"[digests] {name} {digest}" for name, digest in sorted(pushed.items())))
