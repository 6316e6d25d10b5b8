"""The Git host client against a local GitHub API: requests, token handling and error messages."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr
from support.fakehost import FakeGitHub

from mlops_platform.errors import ConfigError, ServiceUnavailableError
from mlops_workflows.promote.githost import GitHub, upsert

TOKEN = "ghp_do-not-print-me"


def client(fake: FakeGitHub, token: str = TOKEN) -> GitHub:
    return GitHub(fake.url, f"{fake.owner}/{fake.name}", SecretStr(token), timeout=5)


def test_upsert_creates_then_updates_and_labels(github: FakeGitHub) -> None:
    host = client(github)
    pr, action = upsert(host, "promote/m/production/v2", "main", "t1", "b1", ["promotion"])
    assert action == "opened" and pr.number == 1
    pr, action = upsert(host, "promote/m/production/v2", "main", "t2", "b2", ["promotion", "env:production"])
    assert action == "updated" and pr.number == 1 and github.pulls[1]["body"] == "b2"
    assert [label["name"] for label in github.pulls[1]["labels"]] == ["promotion", "env:production"]
    listed = github.calls("GET", "/pulls")[0]
    assert listed.query == {
        "head": "mlops-gitops:promote/m/production/v2",
        "base": "main",
        "state": "open",
        "per_page": "10",
    }
    assert all(r.headers["accept"] == "application/vnd.github+json" for r in github.requests)


def test_422_already_exists_on_a_race_updates_the_existing_one(github: FakeGitHub) -> None:
    host = client(github)
    upsert(host, "promote/m/production/v2", "main", "t", "b", [])
    # another run's pull request appears between this run's list and its create
    github.fail_next("GET", "/pulls", 200, [], {})  # type: ignore[arg-type]
    pr, action = upsert(host, "promote/m/production/v2", "main", "t3", "b3", [])
    assert action == "updated" and pr.number == 1 and len(github.pulls) == 1
    assert [r.method for r in github.requests[-3:]] == ["POST", "GET", "PATCH"]


def test_401_names_the_variable_and_never_the_token(github: FakeGitHub) -> None:
    github.fail_next("GET", "/pulls", 401, {"message": "Bad credentials"}, {})
    with pytest.raises(ConfigError) as info:
        upsert(client(github), "b", "main", "t", "body", [])
    assert "401 Bad credentials" in str(info.value) and "MLOPS_PROMOTE_TOKEN" in str(info.value)
    assert TOKEN not in str(info.value)
    assert info.value.exit_code == 2


def test_rate_limit_says_when_it_resets(github: FakeGitHub) -> None:
    reset = int(time.time()) + 600
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    github.fail_next(
        "POST", "/pulls", 403, {"message": "API rate limit exceeded for installation ID 1."}, headers
    )
    with pytest.raises(ServiceUnavailableError) as info:
        upsert(client(github), "b", "main", "t", "body", [])
    message = str(info.value)
    assert "rate limited (403 API rate limit exceeded" in message
    assert time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(reset)) in message and "(in " in message
    assert info.value.exit_code == 4

    github.fail_next("POST", "/pulls", 429, {"message": "secondary rate limit"}, {"retry-after": "60"})
    with pytest.raises(ServiceUnavailableError, match="retry after 60 s"):
        upsert(client(github), "b", "main", "t", "body", [])


def test_403_without_rate_limit_names_the_permissions(github: FakeGitHub) -> None:
    message = "Resource not accessible by personal access token"
    github.fail_next("POST", "/pulls", 403, {"message": message}, {"x-ratelimit-remaining": "4999"})
    with pytest.raises(ConfigError, match="pull requests: write"):
        upsert(client(github), "b", "main", "t", "body", [])


def test_other_validation_errors_are_shown(github: FakeGitHub) -> None:
    errors = [{"resource": "PullRequest", "field": "base", "code": "invalid"}]
    github.fail_next("POST", "/pulls", 422, {"message": "Validation Failed", "errors": errors}, {})
    with pytest.raises(Exception, match="422 Validation Failed invalid"):
        upsert(client(github), "b", "main", "t", "body", [])


def test_unreachable_api_is_a_service_error() -> None:
    host = GitHub("http://127.0.0.1:9", "o/r", SecretStr(TOKEN), timeout=2)
    with pytest.raises(ServiceUnavailableError, match="MLOPS_PROMOTE_API_URL"):
        host.find_open("b", "main")


def test_the_cli_reports_api_errors_with_their_exit_code(
    bot_env: dict[str, str], github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_workflows.cli import main

    github.fail_next("GET", "/pulls", 401, {"message": "Bad credentials"}, {})
    code = main(["promote", "wine-classifier", "--to", "production"])
    out, err = capsys.readouterr()
    assert code == 2 and "the token was rejected" in err
    assert "ghs_secret" not in out + err
    code = main(["config"])
    out, _ = capsys.readouterr()
    assert "ghs_secret" not in out
