"""An environment is one entry in the list and its folder of differences: `mlops environments sync`
writes everything else, and hack/validate names each generated piece that does not match the list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_gitops.manifests import ValidateOptions, envset, validate_repo
from mlops_workflows.cli import main

REPO = Path(__file__).resolve().parents[2]
COPIED = ("apps", "clusters", "infra", "infra/mlops_platform/environments.yaml", "serving/manifests",
          "serving/Dockerfile", "workflows/manifests", "workflows/Dockerfile", "workflows/models",
          ".github/CODEOWNERS")
NOT_MANIFESTS = shutil.ignore_patterns("mlops_platform", "__pycache__", "*.py")
LIST = Path("infra/mlops_platform/environments.yaml")
COMPONENTS = Path("serving/manifests/components")
SYNC = "run `mlops environments sync`"
GENERATED = ("apps/secrets-models.generated.yaml", "infra/namespaces/namespaces.yaml",
             "serving/manifests/gateway/gateway.yaml", "infra/minio/configmap-buckets.yaml",
             "clusters/kind/secret-store/rbac.yaml", "workflows/manifests/workflowtemplate-train.yaml",
             "workflows/manifests/workflowtemplate-drift-check.yaml")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="kubectl is not installed (the validator renders the manifests)")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for rel in COPIED:
        source = REPO / rel
        if source.is_dir():
            shutil.copytree(source, root / rel, ignore=NOT_MANIFESTS, dirs_exist_ok=True)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(pristine, copy)
    return copy


def _problems(root: Path) -> list[str]:
    options = ValidateOptions.from_env(root, crd_schemas=ValidateOptions.from_env(REPO).crd_schemas)
    return [str(p) for p in validate_repo(options).problems]


def _add_uat_to_list(root: Path) -> None:
    path = root / LIST
    text = path.read_text(encoding="utf-8")
    assert "  - staging\n" in text
    path.write_text(text.replace("  - staging\n", "  - staging\n  - uat\n"), encoding="utf-8")


def _add_uat_folder(root: Path) -> None:
    """The folder of differences: staging's, renamed (what a person writes by hand)."""
    shutil.copytree(root / COMPONENTS / "staging", root / COMPONENTS / "uat")
    for path in (root / COMPONENTS / "uat").glob("*.yaml"):
        path.write_text(path.read_text(encoding="utf-8").replace("staging", "uat"), encoding="utf-8")


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sync_writes_nothing_on_the_repository_as_it_is(root: Path) -> None:
    before = _snapshot(root)
    assert envset.sync(root) == []
    assert _snapshot(root) == before
    assert envset.check(root) == []


def test_a_list_entry_alone_names_each_generated_piece(root: Path) -> None:
    _add_uat_to_list(root)
    problems = [str(p) for p in envset.check(root)]
    for rel in GENERATED:
        assert any(p.startswith(f"{rel}: ") and p.endswith(SYNC) for p in problems), (rel, problems)
    assert len(problems) == len(GENERATED), problems


@needs_kubectl
def test_validator_names_what_a_listed_environment_lacks_then_sync_completes_it(root: Path) -> None:
    _add_uat_to_list(root)
    problems = "\n".join(_problems(root))
    for expected in (
        f"apps/secrets-models.generated.yaml: does not match {LIST}; {SYNC}",
        "infra/namespaces/namespaces.yaml: environment uat: missing: the Namespace models-uat",
        "infra/secrets/models-uat: environment uat: missing: the environment's secrets",
        "serving/manifests/models/wine-classifier: environment uat: missing: uat/",
        "serving/manifests/components/uat: environment uat: missing: the environment's folder of differences",
    ):
        assert expected in problems, problems
    _add_uat_folder(root)
    written = {str(p) for p in envset.sync(root)}
    assert set(GENERATED) | {"infra/secrets/models-uat/kustomization.yaml",
                             "serving/manifests/models/wine-classifier/uat/release.env"} <= written, written
    assert _problems(root) == []
    # The rendered pieces carry the new environment.
    namespaces = (root / "infra/namespaces/namespaces.yaml").read_text(encoding="utf-8")
    assert "name: models-uat" in namespaces and "mlops.io/environment: uat" in namespaces
    assert "- models-uat/*.uat.mlops.local" in (root / "serving/manifests/gateway/gateway.yaml").read_text()
    # Idempotent: a second run writes nothing.
    before = _snapshot(root)
    assert envset.sync(root) == []
    assert _snapshot(root) == before


def test_sync_keeps_an_environments_own_secrets_and_removes_a_dropped_one_from_every_block(root: Path) -> None:
    staging_secrets = (root / "infra/secrets/models-staging/kustomization.yaml").read_text(encoding="utf-8")
    text = (root / LIST).read_text(encoding="utf-8")
    (root / LIST).write_text(text.replace("  - staging\n", ""), encoding="utf-8")
    envset.sync(root)
    assert (root / "infra/secrets/models-staging/kustomization.yaml").read_text(encoding="utf-8") == staging_secrets
    assert "models-staging/" not in (root / "serving/manifests/gateway/gateway.yaml").read_text(encoding="utf-8")
    assert "model-api-keys-staging" not in (root / "clusters/kind/secret-store/rbac.yaml").read_text(encoding="utf-8")
    assert "mlops-staging" not in (root / "infra/minio/configmap-buckets.yaml").read_text(encoding="utf-8")
    assert "name: models-staging" not in (root / "infra/namespaces/namespaces.yaml").read_text(encoding="utf-8")
    assert "secrets-models-staging" not in (root / "apps/secrets-models.generated.yaml").read_text(encoding="utf-8")
    assert envset.check(root) == []


def test_cli_sync_and_list(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_uat_to_list(root)
    assert main(["environments", "list", "--root", str(root)]) == 0
    listed = capsys.readouterr().out.split()
    assert listed[:2] == ["staging", "uat"] and listed[-1] == "production", listed
    assert main(["environments", "sync", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "wrote apps/secrets-models.generated.yaml" in out
    assert main(["environments", "sync", "--root", str(root)]) == 0
    assert capsys.readouterr().out.startswith("nothing to write")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: (r / LIST).write_text("environments:\n  - staging\n  - candidate\n", encoding="utf-8"),
     "'candidate' is reserved"),
    (lambda r: (r / LIST).write_text("environments: [staging, Prod]\n", encoding="utf-8"),
     "is not a lowercase DNS label"),
    (lambda r: (r / LIST).unlink(), "cannot be read"),
    (lambda r: (r / "serving/manifests/gateway/gateway.yaml").write_text(
        (r / "serving/manifests/gateway/gateway.yaml").read_text(encoding="utf-8").replace(
            "# END environments", "# end"), encoding="utf-8"),
     "without its '# END environments'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    root: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    assert callable(edit)
    edit(root)
    before = _snapshot(root)
    assert main(["environments", "sync", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert _snapshot(root) == before
