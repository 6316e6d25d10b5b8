"""The promotion bot's view of the alert rules. (Monitoring under STRICT mTLS: the validator's
policy_monitoring.)"""

from __future__ import annotations

import re

from support.gitops import REPO, of_kind, render

from mlops_workflows.promote.settings import PromotionSettings


def test_drift_alert_pattern_of_the_promotion_bot_matches_the_drift_alerts() -> None:
    pattern = str(PromotionSettings.model_fields["drift_alert_pattern"].default)
    alerts = {r["alert"]: r for rule in of_kind(render(REPO / "infra" / "monitoring" / "rules"), "PrometheusRule")
              for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}
    matched = {name for name in alerts if re.fullmatch(pattern, name)}
    drift = {name for name in alerts if name.endswith("Drift")}
    assert drift, "no drift alert in infra/monitoring/rules/"
    assert matched == drift, f"pattern {pattern!r} matches {sorted(matched)}, the drift alerts are {sorted(drift)}"
    for name in drift:  # the bot matches alerts to a model by this label
        assert "model" in alerts[name]["expr"], name
