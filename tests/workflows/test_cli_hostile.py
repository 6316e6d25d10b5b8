"""Hostile arguments and files for the `mlops` CLI: exit 2, one line naming the problem, no
traceback, nothing written. Run in-process through ``cli.main`` (a NUL byte cannot be passed
through exec, but can reach ``main`` from a wrapper or a file), in a fresh working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_platform.errors import ConfigError
from mlops_workflows import cli
from mlops_workflows.promote.release import pinned_version


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _run(argv: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    before = _files(workdir)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        code = cli.main(argv)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    assert _files(workdir) == before, "a hostile command wrote something"
    assert "Traceback" not in out.err + out.out
    return code, out.err


@pytest.mark.parametrize("argv", [
    ["train", "--config", "wine\x00.yaml"],
    ["batch-predict", "--model", "wine\x00classifier"],
    ["drift", "--model", "\x00"],
    ["keys", "create", "--models", "a\x00b"],
    ["promote", "wine-classifier", "\x00"],
], ids=["train", "batch-predict", "drift", "keys", "promote"])
def test_nul_byte_in_an_argument(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(argv, tmp_path, capsys)
    assert code == 2
    position = next(k for k, arg in enumerate(argv, 1) if "\x00" in arg)
    assert err.strip() == f"error: argument {position} contains a NUL byte"


def test_train_config_that_is_a_folder_or_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"model_name: caf\xe9\n")
    for name in ("folder.yaml", "latin1.yaml"):
        code, err = _run(["train", "--config", name], tmp_path, capsys)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: "), err


def test_keys_append_to_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keys").mkdir()
    code, err = _run(["keys", "create", "--append", "keys"], tmp_path, capsys)
    assert code == 2, err
    assert err.strip() == "error: keys is a folder; expected a file"


@pytest.mark.parametrize("value", ["99999999999999999999999", "9" * 5000, "²", "-1", "0", "1.5"])
def test_release_pin_that_is_not_a_version(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pinned_version(f"MODEL_VERSION={value}\n", "release.env")
    assert len(str(caught.value)) < 200
    assert "is not a version number" in str(caught.value)
