"""A model is its training config: `mlops models add`/`sync` write the rest, and the validator's model
check names the missing piece of a half-added model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops_gitops.manifests import modelset
from mlops_gitops.manifests.discover import render
from mlops_gitops.manifests.model import Obj, Source
from mlops_platform.registry_names import ENVIRONMENTS

REPO = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
COPIED = ("workflows/models", "workflows/manifests", "serving/manifests", ".github/CODEOWNERS")
NEW = "added-classifier"  # a model the repository does not have (iris-classifier may well be added)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it renders the manifests)")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The model-related part of the repository, copied."""
    for rel in COPIED:
        source, target = REPO / rel, tmp_path / rel
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return tmp_path


def _rendered(root: Path) -> list[Obj]:
    assert KUBECTL is not None
    source = Source(modelset.WORKFLOWS, rendered=True)
    return [Obj(doc, source) for doc in render(root / modelset.WORKFLOWS, KUBECTL)]


def _problems(root: Path) -> list[str]:
    return [str(p) for p in modelset.check(root, _rendered(root))]


def _new_config(folder: Path, name: str = NEW) -> Path:
    text = (REPO / "workflows/models/wine-classifier.yaml").read_text(encoding="utf-8")
    text = (text.replace("model_name: wine-classifier", f"model_name: {name}")
            .replace("sklearn: wine", "sklearn: iris")
            .replace("@mlops-gitops/wine-owners", "@mlops-gitops/added-owners")
            .replace('schedule: "0 2 * * *"', 'schedule: "0 4 * * *"')
            .replace("minute: 5 ", "minute: 50 "))
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _mlops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops_workflows.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_repository_is_complete_and_sync_changes_nothing(root: Path) -> None:
    assert _problems(root) == []
    assert modelset.sync(root) == []


def test_a_config_alone_is_half_added_and_each_missing_piece_is_named(root: Path) -> None:
    _new_config(root / modelset.CONFIGS)
    problems = "\n".join(_problems(root))
    serving = f"serving/manifests/models/{NEW}"
    for piece in (f"missing {serving}/staging/kustomization.yaml", f"missing {serving}/staging/release.env",
                  f"missing {serving}/production/kustomization.yaml", f"missing {serving}/production/release.env",
                  f"missing CronWorkflow batch-inference-{NEW}", f"missing CronWorkflow drift-check-{NEW}",
                  f"missing semaphore: no key {NEW} in ConfigMap mlops-workflow-limits",
                  f"missing owners line for /{serving}/production/release.env (@mlops-gitops/added-owners)",
                  "workflows/manifests/models.generated.yaml: does not match workflows/models/*.yaml",
                  ".github/CODEOWNERS: the models block does not match"):
        assert piece in problems, f"{piece!r} not in:\n{problems}"


def test_models_add_writes_everything_else_and_the_model_renders(root: Path, tmp_path_factory: pytest.TempPathFactory
                                                                  ) -> None:
    config = _new_config(tmp_path_factory.mktemp("elsewhere"))
    result = _mlops("models", "add", NEW, "--from-config", str(config), "--root", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    written = {line.removeprefix("wrote ") for line in result.stdout.splitlines() if line.startswith("wrote ")}
    assert written == {f"workflows/models/{NEW}.yaml", "workflows/manifests/models.generated.yaml",
                       ".github/CODEOWNERS",
                       *(f"serving/manifests/models/{NEW}/{env}/{name}" for env in ENVIRONMENTS
                         for name in ("kustomization.yaml", "release.env"))}
    assert _problems(root) == []

    crons = {o.name: o.body for o in _rendered(root) if o.kind == "CronWorkflow"}
    assert crons[f"batch-inference-{NEW}"]["spec"]["schedules"] == ["0 4 * * *"]
    assert crons[f"drift-check-{NEW}"]["spec"]["schedules"] == ["50 * * * *"]
    [limits] = [o.body for o in _rendered(root) if o.kind == "ConfigMap" and o.name == "mlops-workflow-limits"]
    assert limits["data"][NEW] == "2"
    # The serving folder renders a Rollout of the new model with nothing pinned (no pods).
    assert KUBECTL is not None
    docs = render(root / f"serving/manifests/models/{NEW}/production", KUBECTL)
    [rollout] = [d for d in docs if d["kind"] == "Rollout"]
    assert rollout["metadata"]["name"] == f"{NEW}-model-server" and rollout["spec"]["replicas"] == 0
    assert f"/serving/manifests/models/{NEW}/production/release.env  @mlops-gitops/added-owners" in (
        root / ".github/CODEOWNERS").read_text(encoding="utf-8").splitlines()
    # A second sync writes nothing; a pin the bot made is never rewritten.
    release = root / f"serving/manifests/models/{NEW}/production/release.env"
    release.write_text(release.read_text(encoding="utf-8").replace("MODEL_VERSION=\n", "MODEL_VERSION=3\n"),
                       encoding="utf-8")
    assert modelset.sync(root) == []
    assert "MODEL_VERSION=3\n" in release.read_text(encoding="utf-8")


def _drop_drift_cron(root: Path) -> None:
    path = root / modelset.GENERATED
    docs = path.read_text(encoding="utf-8").split("\n---\n")
    kept = [d for d in docs if "name: drift-check-wine-classifier" not in d]
    assert len(kept) == len(docs) - 1
    path.write_text("\n---\n".join(kept), encoding="utf-8")


def _drop_semaphore(root: Path) -> None:
    path = root / modelset.GENERATED
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('  wine-classifier: "2"\n', ""), encoding="utf-8")


def _drop_owners_line(root: Path) -> None:
    path = root / modelset.CODEOWNERS
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if "wine-classifier" not in line), encoding="utf-8")


def _change_owners_in_config(root: Path) -> None:
    path = root / "workflows/models/wine-classifier.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("@mlops-gitops/wine-owners", "@mlops-gitops/vino"),
                    encoding="utf-8")


def _remove_config(root: Path) -> None:
    (root / "workflows/models/breast-cancer-classifier.yaml").unlink()
    modelset.sync(root)  # even with everything generated again, its serving folder is left over


def _remove_serving_env(root: Path) -> None:
    shutil.rmtree(root / "serving/manifests/models/wine-classifier/staging")


def _misnamed_config(root: Path) -> None:
    _new_config(root / modelset.CONFIGS).rename(root / modelset.CONFIGS / "added.yaml")


def _config_does_not_load(root: Path) -> None:
    path = root / "workflows/models/wine-classifier.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("minute: 5 ", "minute: 75 "), encoding="utf-8")


def _no_owners(root: Path) -> None:
    path = root / "workflows/models/wine-classifier.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith("owners:")), encoding="utf-8")
    modelset.sync(root)


def _unknown_environment(root: Path) -> None:
    shutil.copytree(root / "serving/manifests/models/wine-classifier/staging",
                    root / "serving/manifests/models/wine-classifier/not-listed")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop_drift_cron, "workflows/models/wine-classifier.yaml: model wine-classifier: missing CronWorkflow "
                           "drift-check-wine-classifier in workflows/manifests/; run `mlops models sync`"),
        (_drop_semaphore, "workflows/models/wine-classifier.yaml: model wine-classifier: missing semaphore: no key "
                          "wine-classifier in ConfigMap mlops-workflow-limits"),
        (_drop_owners_line, ".github/CODEOWNERS: model wine-classifier: missing owners line for "
                            "/serving/manifests/models/wine-classifier/production/release.env"),
        (_change_owners_in_config, "/serving/manifests/models/wine-classifier/production/release.env is owned by "
                                   "@mlops-gitops/wine-owners, its config says @mlops-gitops/vino"),
        (_remove_config, "serving/manifests/models/breast-cancer-classifier: model breast-cancer-classifier: no "
                         "training config workflows/models/breast-cancer-classifier.yaml"),
        (_remove_serving_env, "missing serving/manifests/models/wine-classifier/staging/kustomization.yaml "
                              "(its staging serving folder)"),
        (_misnamed_config, f"workflows/models/added.yaml: model {NEW}: the file must be named after its "
                           f"model_name: workflows/models/{NEW}.yaml"),
        (_config_does_not_load, "workflows/models/wine-classifier.yaml: training config"),
        (_no_owners, "model wine-classifier: no owners"),
        (_unknown_environment, "serving/manifests/models/wine-classifier/not-listed: model wine-classifier: "
                               "'not-listed' is not an environment"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_half_added_model_is_named(root: Path, mutate: Callable[[Path], None], expected: str) -> None:
    mutate(root)
    problems = _problems(root)
    assert any(expected in line for line in problems), "\n".join(problems) or "no problem"


def test_the_old_names_and_schedules_are_kept() -> None:
    """What users see does not change: the shipped models' CronWorkflows and semaphore keys are those
    they had before they were generated."""
    rendered = {(o.kind, o.name): o.body for o in _rendered(REPO)}
    schedules = {name: rendered[("CronWorkflow", name)]["spec"]["schedules"] for kind, name in rendered
                 if kind == "CronWorkflow" and ("wine" in name or "breast-cancer" in name)}
    assert schedules == {"batch-inference-wine-classifier": ["0 2 * * *"],
                         "drift-check-wine-classifier": ["5 * * * *"],
                         "batch-inference-breast-cancer-classifier": ["0 3 * * *"],
                         "drift-check-breast-cancer-classifier": ["35 * * * *"]}
    limits = rendered[("ConfigMap", "mlops-workflow-limits")]["data"]
    assert {k: limits[k] for k in ("wine-classifier", "breast-cancer-classifier")} == {
        "wine-classifier": "2", "breast-cancer-classifier": "2"}


def test_models_add_refuses_a_config_of_another_model(root: Path) -> None:
    config = _new_config(root, name="other-classifier")
    result = _mlops("models", "add", NEW, "--from-config", str(config), "--root", str(root))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {config}: model_name is 'other-classifier', not '{NEW}'"]
    assert not (root / modelset.CONFIGS / f"{NEW}.yaml").exists()


def test_models_sync_stops_on_a_broken_config_before_writing(root: Path) -> None:
    generated = (root / modelset.GENERATED).read_text(encoding="utf-8")
    _new_config(root / modelset.CONFIGS)
    _config_does_not_load(root)
    result = _mlops("models", "sync", "--root", str(root))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "jobs.drift_check.minute" in result.stderr
    assert (root / modelset.GENERATED).read_text(encoding="utf-8") == generated
    assert not (root / f"serving/manifests/models/{NEW}").exists()



def test_a_new_model_starts_on_the_server_release_the_others_run(root: Path) -> None:
    for release in (root / "serving/manifests/models").glob("*/*/release.env"):
        release.write_text(release.read_text(encoding="utf-8").replace("IMAGE_TAG=0.1.0", "IMAGE_TAG=0.2.0"),
                           encoding="utf-8")
    _new_config(root / modelset.CONFIGS)
    modelset.sync(root)
    for env in ("staging", "production"):
        text = (root / f"serving/manifests/models/{NEW}/{env}/release.env").read_text(encoding="utf-8")
        assert "\nMODEL_VERSION=\nIMAGE_TAG=0.2.0\n" in text
