"""Workflow steps as their pods run them: the rollout-outcome workflow the Rollouts notification submits.

The workflow templates are rendered from the cluster's overlay with the Git coordinates Argo CD adds
(``mlops.io/git-repo``, ``-revision``, ``-repository`` annotations) pointing at the local Git server;
the step a ``when`` selects is resolved by :mod:`mlops_local.podspec` (workflow parameters, the
template's inputs, ConfigMaps, the local secrets), its ``git`` input artifact is cloned with the
credentials its ``usernameSecret``/``passwordSecret`` name (in the git process's environment only),
and the container runs locally. The only additions are ``MLOPS_PROMOTE_HOST`` and
``MLOPS_PROMOTE_API_URL``: the local pull-request host, which speaks GitHub's endpoints, stands in
for the kind cluster's Git host (its in-cluster Gitea).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_local.podspec import Rendered, render
from mlops_platform.errors import ConfigError
from mlops_workflows.promote.git_ops import GitCredentials

_WHEN = re.compile(r"^'(.*)' == '(.*)'$")


class WorkflowRunner:
    def __init__(self, repo: Path, overlay: Path, workdir: Path, annotations: Mapping[str, str],
                 secrets: Mapping[str, Mapping[str, str]], services: Mapping[str, str],
                 extra_env: Mapping[str, str]) -> None:
        self.rendered: Rendered = render(overlay, repo=repo, common_annotations=annotations)
        self.workdir = workdir
        self.secrets = secrets
        self.services = dict(services)
        self.extra_env = dict(extra_env)
        self.runs = 0

    def run(self, workflow_template: str, parameters: Mapping[str, str], log: Path
            ) -> list[subprocess.CompletedProcess[str]]:
        """Run the steps of the entrypoint whose ``when`` holds, in order; returns their results."""
        from mlops_local.cluster import applicable

        wft = self.rendered.find("WorkflowTemplate", workflow_template)
        spec = wft["spec"]
        entry = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
        results = []
        for group in entry.get("steps") or []:
            for step in group:
                if not self._when(step.get("when"), parameters):
                    continue
                inputs = {p["name"]: str(p["value"]) for p in (step.get("arguments") or {}).get("parameters", [])}
                pod = self.rendered.workflow_step(workflow_template, step["template"], parameters=parameters,
                                                  inputs=inputs, secrets=self.secrets)
                self.runs += 1
                pod_dir = self.workdir / f"{workflow_template}-{self.runs}-{step['name']}"
                mounts: dict[str, str] = {}
                for name, artifact in pod.artifacts.items():
                    target = pod_dir / "artifacts" / name
                    self._fetch(artifact, target)
                    mounts[str(artifact["path"])] = str(target)
                tmp = pod_dir / "tmp"
                tmp.mkdir(parents=True, exist_ok=True)
                mounts["/tmp"] = str(tmp)
                for value in [*pod.argv, *pod.env.values()]:
                    if value.startswith("s3://"):
                        bucket = value[5:].split("/", 1)[0]
                        mounts[f"s3://{bucket}"] = str(self.workdir.parent / "objectstore" / bucket)
                local = pod.with_overrides(applicable(pod, {**self.services, **mounts}))
                cwd = Path(mounts.get("/work/repo", str(pod_dir)))
                result = local.run(cwd=cwd, extra_env=self.extra_env, timeout=600)
                with log.open("a") as out:
                    out.write(f"$ {' '.join(local.argv)}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n")
                results.append(result)
        return results

    @staticmethod
    def _when(expression: str | None, parameters: Mapping[str, str]) -> bool:
        if not expression:
            return True
        text = re.sub(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_-]+)\s*\}\}",
                      lambda m: parameters.get(m.group(1), m.group(0)), expression)
        match = _WHEN.match(text)
        if match is None:
            raise ConfigError(f"`when: {expression}` is not a comparison the local runner evaluates")
        return match.group(1) == match.group(2)

    def _fetch(self, artifact: Mapping[str, Any], target: Path) -> None:
        git = artifact.get("git")
        if not git:
            raise ConfigError(f"input artifact {artifact.get('name')!r}: only git artifacts are fetched locally")
        env: dict[str, str] = {"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"}
        user_ref, password_ref = git.get("usernameSecret"), git.get("passwordSecret")
        if user_ref and password_ref:
            from pydantic import SecretStr

            username = self.secrets[user_ref["name"]][user_ref["key"]]
            password = SecretStr(self.secrets[password_ref["name"]][password_ref["key"]])
            env.update(GitCredentials(username, password).env_for(str(git["repo"])))
        argv = ["git", "clone", "-q", "--branch", str(git.get("branch") or git.get("revision") or "main")]
        if git.get("singleBranch"):
            argv.append("--single-branch")
        result = subprocess.run([*argv, str(git["repo"]), str(target)], capture_output=True, text=True, env=env,
                                timeout=120)
        if result.returncode != 0:
            raise ConfigError(f"git artifact {artifact.get('name')!r}: {result.stderr.strip()}")


__all__ = ["WorkflowRunner"]
