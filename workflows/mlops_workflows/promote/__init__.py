"""The promotion bot: model version bumps as reviewed Git changes that Argo CD and Argo Rollouts act on.

``mlops promote`` edits one line of ``serving/manifests/models/<model>/<env>/release.env`` on a
branch ``promote/<model>/<env>/v<N>``, pushes it and opens (or updates) one pull request with a
model card; ``mlops rollback`` and ``mlops promote --revert-aborted`` open the way back;
``mlops promote --finalize`` moves the MLflow alias once Git has landed the change; and
``mlops models history`` reads which version ran when from Git history.
"""
