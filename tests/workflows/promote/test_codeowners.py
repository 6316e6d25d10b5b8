"""Governance in Git: every production release pin has its model's owners in CODEOWNERS."""

from __future__ import annotations

import fnmatch

from support.promote import REPO

CODEOWNERS = REPO / ".github" / "CODEOWNERS"


def _rules() -> list[tuple[str, list[str]]]:
    rules = []
    for line in CODEOWNERS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pattern, *owners = line.split()
            rules.append((pattern, owners))
    return rules


def _owners(path: str) -> list[str]:
    """GitHub semantics for these anchored patterns: the last match wins; `*` does not cross `/`."""
    found: list[str] = []
    for pattern, owners in _rules():
        anchored = pattern.lstrip("/")
        if fnmatch.fnmatchcase(path, anchored) and path.count("/") == anchored.count("/"):
            found = owners
    return found


def test_every_production_release_file_needs_its_models_owners() -> None:
    pins = sorted(REPO.glob("serving/manifests/models/*/production/release.env"))
    assert pins, "no production release files found"
    for pin in pins:
        model = pin.parent.parent.name
        owners = _owners(str(pin.relative_to(REPO)))
        assert owners, f"{pin} has no code owners"
        assert all(o.startswith("@mlops-gitops/") and o.endswith("-owners") for o in owners), (model, owners)
        assert model.removesuffix("-classifier") in owners[0], (model, owners)


def test_staging_pins_have_no_extra_owners_and_codeowners_protects_itself() -> None:
    for pin in REPO.glob("serving/manifests/models/*/staging/release.env"):
        assert _owners(str(pin.relative_to(REPO))) == []
    assert _owners(".github/CODEOWNERS") == ["@mlops-gitops/platform-admins"]
    assert _owners("serving/manifests/models/new-model/production/release.env") == [
        "@mlops-gitops/platform-admins"
    ]
