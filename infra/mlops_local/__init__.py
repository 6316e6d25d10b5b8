"""The platform on one machine: what ``mlops lifecycle`` (``hack/demo.sh``) runs in place of a cluster.

Same manifests (rendered with ``kubectl kustomize``), same ``mlops`` CLI, same analysis module; the
only substitutes are local processes for pods (:mod:`.cluster`, :mod:`.podspec`), a local process
runner for Argo Workflows with its Argo Server API (:mod:`.workflows`, :mod:`.argoexpr`,
:mod:`.argoserver`), a rollout runner for the Argo Rollouts controller (:mod:`.rollout`), Envoy
configured by a translation of the rendered Istio objects for istiod and the sidecars
(:mod:`.istio`, :mod:`.envoy`), and a local pull-request host speaking the GitHub endpoints the bot
uses (:mod:`.prhost`) beside ``git http-backend`` (:mod:`.gitserver`).
"""
