"""The promote tests' GitHub: the local pull-request host (``mlops_local.prhost``) without a repository.

Any bearer token is accepted, every request is recorded (``requests``, ``calls``), failures are
injected with ``fail_next`` and ``merge(number, sha)`` records a merge; pull requests link to
``https://github.example/<owner>/<name>/pull/<n>`` as on GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_local.prhost import PullRequestHost, Recorded, serve

__all__ = ["FakeGitHub", "Recorded", "serve"]


@dataclass
class FakeGitHub(PullRequestHost):
    owner: str = "mlops-gitops"
    html_base: str = "https://github.example/mlops-gitops/mlops-platform"
