"""Strict offline validation of every Kubernetes manifest in the repository (``hack/validate``).

Every kustomization is rendered with ``kubectl kustomize``; every other YAML file that holds
Kubernetes objects is read as it is, and is a problem when no kustomization lists it and no Argo CD
Application syncs its folder (nothing would deploy it). Each object is then validated strictly (unknown fields are
errors): core kinds with the schemas shipped inside ``kubernetes-validate``, custom kinds with
JSON schemas in the kubeconform layout (``<group>/<kind>_<version>.json``) from the folder named
by ``MLOPS_CRD_SCHEMAS``. A kind without a schema is a problem. Cross-reference checks follow:
Argo CD paths, Rollout/Service/VirtualService/DestinationRule/AnalysisTemplate agreement, metric
names against :mod:`mlops_platform.metric_names`, in-cluster Service URLs
(``http://<svc>.<ns>.svc.cluster.local:<port>`` in ConfigMaps and env) against the Services the
repository creates, Dockerfiles for the project's images, and no committed Secret data. The
repository's policies close the run, one module each: ``policy_argocd`` (how every Application,
ApplicationSet and AppProject is set), ``policy_workflows`` (every WorkflowTemplate and
CronWorkflow bounded and attributed), ``policy_images`` (chart value images, database images and
Dockerfiles pinned, non-root) and ``policy_monitoring`` (mesh workloads scraped with the mesh's
certificates). A new rule goes into a policy module, with a test of a good and
a bad bundle (tests/gitops/test_policy_*.py).
"""

from __future__ import annotations

from mlops_gitops.manifests.model import Obj, Problem, Source
from mlops_gitops.manifests.validate import Report, ValidateOptions, validate_repo

__all__ = ["Obj", "Problem", "Report", "Source", "ValidateOptions", "validate_repo"]
