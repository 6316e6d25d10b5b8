"""``python -m mlops_gitops.manifests``: validate every manifest in the repository (hack/validate)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlops_gitops.manifests.validate import ENV_CRD_SCHEMAS, ValidateOptions, validate_repo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/validate",
        description="Render every kustomization, validate every Kubernetes object strictly and check "
        "cross-references. Prints one line per problem and a summary; exits 1 on any problem.",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    parser.add_argument("--crd-schemas", type=Path, default=None,
                        help=f"CRD JSON schemas in the kubeconform layout (default: ${ENV_CRD_SCHEMAS}, "
                        "else ../shared/crd-schemas beside the repository)")
    args = parser.parse_args(argv)
    report = validate_repo(ValidateOptions.from_env(args.root, args.crd_schemas))
    for problem in report.problems:
        print(problem)
    print(report.summary(), file=sys.stderr if report.ok else sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
