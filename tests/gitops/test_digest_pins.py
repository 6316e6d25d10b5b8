"""prod-example pins the project's images by the digests a release pushed (mlops_gitops.manifests.digest_pins).

The pinning of digests a real registry returned is tested in test_images_run.py (the images pushed to
Debian's docker-registry); here: what the repository holds, and the script's refusals and renames.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.gitops import REPO, project_images

from mlops_gitops.manifests import digest_pins

# Syntactically valid digests for the script's input checks and renders in temporary copies only
# (no digest in Git names an image that was never pushed).
DIGESTS = {image: "sha256:" + f"{n:x}" * 64 for n, image in enumerate(digest_pins.PROJECT_IMAGES, start=10)}


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", ".mlops", "__pycache__"))
    return root


def _refs(repository: str = digest_pins.MANIFEST_REPOSITORY, tag: str = "0.1.0") -> list[str]:
    return [f"{repository}/{image}:{tag}@{DIGESTS[image]}" for image in digest_pins.PROJECT_IMAGES]


def test_prod_example_in_git_is_pinned_by_a_release_or_not_at_all(tmp_path: Path) -> None:
    """Before the first release the Component pins nothing and prod-example runs the manifests' tags;
    after it, every project image of prod-example is pinned by digest. Never half."""
    pins = digest_pins.pinned(REPO, "prod-example")
    used = project_images(REPO, "prod-example", tmp_path)
    assert {i.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[1] for i in used} == set(digest_pins.PROJECT_IMAGES)
    if not pins:
        text = digest_pins.component_path(REPO, "prod-example").read_text()
        assert "No release has been pushed yet" in text
        assert all("@" not in image and image.startswith("ghcr.io/mlops-gitops/") for image in used), used
    else:
        assert set(pins) == set(digest_pins.PROJECT_IMAGES)
        for image in used:
            assert image.endswith(f"@{pins[image.split('@')[0].rsplit(':', 1)[0].rsplit('/', 1)[1]]}"), image


def test_pins_reach_every_project_image_of_prod_example_and_a_fork_s_registry(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert digest_pins.main(["--root", str(root), *_refs("ghcr.io/a-fork")]) == 0
    used = project_images(root, "prod-example", tmp_path, registries=("ghcr.io/",))
    assert used
    for image in used:
        name = image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[1]
        assert image.startswith("ghcr.io/a-fork/") and image.endswith(f"@{DIGESTS[name]}"), image
    # The model server keeps the tag its folder's release.env pins, plus the digest.
    assert f"ghcr.io/a-fork/model-server:0.1.0@{DIGESTS['model-server']}" in used


def test_a_model_folder_on_another_tag_fails_to_render_instead_of_running_an_unpinned_image(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert digest_pins.main(["--root", str(root), *_refs()]) == 0
    release = root / "serving" / "manifests" / "models" / "wine-classifier" / "staging" / "release.env"
    release.write_text(release.read_text().replace("IMAGE_TAG=0.1.0", "IMAGE_TAG=0.2.0"))
    with pytest.raises(AssertionError, match="testing value /data/IMAGE_TAG failed"):
        project_images(root, "prod-example", tmp_path)


@pytest.mark.parametrize(("refs", "message"), [
    (["ghcr.io/mlops-gitops/model-server:0.1.0"], "not an image reference pinned by a sha256 digest"),
    (["ghcr.io/mlops-gitops/model-server:0.1.0@sha256:abc"], "not an image reference pinned by a sha256 digest"),
    ([f"ghcr.io/mlops-gitops/other:0.1.0@{DIGESTS['mlops-jobs']}"], "not one of the project's images"),
    (_refs()[:2], "no digest for mlflow-server"),
    ([f"ghcr.io/mlops-gitops/model-server@{DIGESTS['model-server']}", *_refs()[1:]], "model-server needs its tag"),
    ([*_refs(), f"ghcr.io/mlops-gitops/mlops-jobs:0.1.0@{DIGESTS['model-server']}"], "two digests for mlops-jobs"),
    (_refs("127.0.0.1:5000/mlops-gitops"), "a registry with a port cannot hold the model server"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, refs: list[str], message: str) -> None:
    root = _copy(tmp_path)
    before = digest_pins.component_path(root, "prod-example").read_text()
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "mlops_gitops.manifests.digest_pins", "--root", str(root),
         "--from", "-"], input="\n".join(refs) + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert digest_pins.component_path(root, "prod-example").read_text() == before


def test_a_cluster_without_the_component_takes_no_pins(capsys: pytest.CaptureFixture[str]) -> None:
    assert digest_pins.main(["--root", str(REPO), "--cluster", "kind", *_refs()]) == 2
    assert "kind takes no digest pins" in capsys.readouterr().err


def test_the_release_workflow_pins_the_digests_of_every_image_it_pushes() -> None:
    """.github/workflows/ci.yaml: the images job builds each project image, and on a release tag the
    pin-digests job feeds the pushed references to the script and proposes the change as a pull request."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())
    jobs = workflow["jobs"]
    assert {m["image"] for m in jobs["images"]["strategy"]["matrix"]["include"]} == set(digest_pins.PROJECT_IMAGES)
    pin = jobs["pin-digests"]
    assert pin["needs"] == "images" and "refs/tags/v" in pin["if"]
    script = "\n".join(step.get("run", "") for step in pin["steps"])
    assert "mlops_gitops.manifests.digest_pins --cluster prod-example --from -" in script
    assert "gh pr create --base main" in script
    assert any("refs/tags/v" in str(step.get("if", "")) and "upload-artifact" in str(step.get("uses", ""))
               for step in jobs["images"]["steps"])
