"""Repository tooling: what checks and exercises the GitOps repository, never needed by a running image.

- :mod:`mlops_gitops.manifests`: strict offline validation of every manifest (``hack/validate``), the
  cluster footprint, upstream sizes, chart values and the release's digest pins;
- :mod:`mlops_gitops.analysis`: Argo Rollouts AnalysisTemplates evaluated locally with Argo's semantics
  (``mlops analysis run`` and the local rollout runner of ``mlops lifecycle``).

It imports the runtime library (:mod:`mlops_platform`); no runtime package imports it, and the
images do not install it (tests/gitops/test_image_packages.py).
"""
