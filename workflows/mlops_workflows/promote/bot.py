"""The promotion bot: gates, one-line release edit, commit, push, pull request; rollback; finalize."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from mlops_platform import registry_names as reg
from mlops_platform.errors import ConfigError, GateFailedError, InvalidInputError, ServiceUnavailableError
from mlops_platform.model_names import check_model_name
from mlops_platform.registry import Registry
from mlops_workflows.promote import gates
from mlops_workflows.promote.canary import merge_effect
from mlops_workflows.promote.errors import PromotionConflictError
from mlops_workflows.promote.git_ops import GitCredentials, Identity, PushRejected, Workspace, toplevel
from mlops_workflows.promote.githost import GitHost, PullRequest, make_host, upsert
from mlops_workflows.promote.health import Prometheus, drift_alerts
from mlops_workflows.promote.history import Pin, previous_pin, release_history
from mlops_workflows.promote.model_card import VersionFacts, facts, render_card
from mlops_workflows.promote.release import (
    check_environment,
    drop_unpinned,
    kustomization_path,
    pinned_version,
    release_path,
    set_model_version,
)
from mlops_workflows.promote.settings import PromotionSettings

if TYPE_CHECKING:
    from git import Commit

Kind = Literal["promote", "rollback"]

SERVER_SUFFIX = "-model-server"


@dataclass(frozen=True)
class Change:
    """One release edit: ``model`` in ``env`` goes from ``old`` to ``new``."""

    kind: Kind
    model: str
    env: str
    path: str
    old: int | None  # None: the environment pinned nothing yet
    new: int
    lineage: tuple[tuple[str, str], ...] = ()
    reason: str | None = None

    @property
    def branch(self) -> str:
        return f"{self.kind}/{self.model}/{self.env}/v{self.new}"

    @property
    def title(self) -> str:
        old = f"v{self.old}" if self.old is not None else "none"
        return f"{self.kind}({self.model}): {old} -> v{self.new} [{self.env}]"

    @property
    def message(self) -> str:
        what = "Pin" if self.kind == "promote" else "Roll back to"
        lines = [self.title, "", f"{what} {self.model} v{self.new} in {self.env} ({self.path})."]
        if self.reason:
            lines += ["", f"Reason: {self.reason}"]
        trailers = [("Model", self.model), ("Environment", self.env), ("Model-Version", str(self.new))]
        trailers += [("Previous-Version", str(self.old) if self.old is not None else "none"), *self.lineage]
        lines += ["", *(f"{key}: {value}" for key, value in trailers)]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Outcome:
    action: str  # "dry run", "opened", "updated", "committed", "already landed", "already pinned"
    change: Change
    commit: str | None = None
    pull_request: PullRequest | None = None


def _lineage(candidate: VersionFacts) -> tuple[tuple[str, str], ...]:
    return (
        ("MLflow-Run", candidate.run_id or "-"),
        ("Dataset-Digest", candidate.tags.get(reg.TAG_DATASET_DIGEST, "-")),
        ("Dataset-Source", candidate.tags.get(reg.TAG_DATASET_SOURCE, "-")),
        ("Source-Commit", candidate.tags.get(reg.TAG_GIT_COMMIT, "-")),
    )


def parse_rollout(ref: str) -> tuple[str, str]:
    """``models-<env>/<model>-model-server`` (an Argo Rollouts notification's namespace/name) → model, env."""
    namespace, _, name = ref.partition("/")
    if not namespace.startswith("models-") or not name.endswith(SERVER_SUFFIX):
        raise InvalidInputError(f"--rollout {ref!r} is not models-<env>/<model>{SERVER_SUFFIX}")
    return check_model_name(name[: -len(SERVER_SUFFIX)]), check_environment(namespace.removeprefix("models-"))


class Bot:
    def __init__(
        self,
        settings: PromotionSettings,
        registry_factory: Callable[[], Registry] | None = None,
        host: GitHost | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings
        token = settings.token if settings.token is not None and settings.token.get_secret_value() else None
        credentials = GitCredentials(settings.effective_git_username, token) if token is not None else None
        self.workspace = Workspace(
            settings.repo_path or toplevel(Path.cwd()), settings.remote, settings.base_branch, credentials
        )
        self._registry_factory = registry_factory or (lambda: Registry(settings))
        self._registry: Registry | None = None
        self._host = host
        self.out = out or sys.stdout
        self.identity = Identity(settings.bot_name, settings.bot_email)

    # -- plumbing ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def host(self) -> GitHost:
        if self._host is None:
            self._host = make_host(self.settings)
        return self._host

    def _path(self, model: str, env: str) -> str:
        return release_path(self.settings.models_dir, model, env)

    def _pinned(self, commit: Commit, path: str) -> tuple[str, int | None]:
        text = self.workspace.read(commit, path)
        if text is None:
            raise ConfigError(
                f"{path} does not exist on {self.workspace.tracking_ref()}: the model has no folder for this "
                "environment yet (`mlops models sync` writes it from workflows/models/<model>.yaml)"
            )
        return text, pinned_version(text, path)

    def _previous_pin(self, base: Commit, model: str, env: str) -> int | None:
        """What Git pins in the environment before ``env`` (None: it pins nothing or there is none)."""
        previous = gates.previous_environment(env)
        if previous is None:
            return None
        text = self.workspace.read(base, self._path(model, previous))
        return pinned_version(text, self._path(model, previous)) if text is not None else None

    def _drift_status(self, model: str, env: str, now: VersionFacts) -> str:
        if self.settings.prometheus_url:
            try:
                prometheus = Prometheus(self.settings.prometheus_url, self.settings.api_timeout_s)
                firing = drift_alerts(prometheus, model, self.settings.drift_alert_pattern)
            except ServiceUnavailableError as exc:
                return f"Unknown: {exc}"
            if firing:
                return f"⚠️ Drift alert firing for `{model}`: {', '.join(firing)}."
            pattern = self.settings.drift_alert_pattern
            return f"No drift alert firing for `{model}` (Prometheus, alerts matching `{pattern}`)."
        # The drift job writes these on each check of the version's served traffic.
        drift_tags = {key: now.tags[key] for key in reg.DRIFT_TAGS if now.tags.get(key)}
        if drift_tags:
            shown = ", ".join(f"`{k}={v}`" for k, v in drift_tags.items())
            return f"Latest drift result of v{now.version} in {env}: {shown}."
        return (f"Unknown: MLOPS_PROMETHEUS_URL is not set and the version in the environment has no "
                f"{reg.DRIFT_TAG_PREFIX}* tags (no drift check of it yet).")

    # -- promote ----------------------------------------------------------------------------

    def promote(
        self, model: str, env: str, version: int | None = None, alias: str | None = None, dry_run: bool = False
    ) -> Outcome:
        check_model_name(model)
        check_environment(env)
        path = self._path(model, env)
        base = self.workspace.fetch_base()
        _, pinned = self._pinned(base, path)
        if version is None and alias is None:
            alias = gates.previous_environment(env) or reg.CANDIDATE
        mv, exists = gates.resolve(self.registry, model, version, alias)
        if mv is not None and pinned == int(mv.version):
            self.say(f"{self.settings.base_branch} already pins {model} v{pinned} in {env} ({path}): nothing to do")
            return Outcome("already pinned", Change("promote", model, env, path, pinned, pinned))
        checks = [exists]
        if mv is not None:
            checks += [
                gates.gate_check(mv),
                gates.alias_check(self.registry, model, mv, env, self._previous_pin(base, model, env)),
                gates.health_check(self.settings, model, mv, env),
                gates.not_running_check(env, pinned, int(mv.version)),
            ]
        self.say(f"gates for {model} -> {env}:\n{gates.format_checks(checks)}")
        gates.enforce(checks, f"promotion of {model} to {env}")
        assert mv is not None
        new = int(mv.version)
        candidate, current = facts(self.registry, model, new), facts(self.registry, model, pinned)
        change = Change("promote", model, env, path, pinned, new, _lineage(candidate))
        body = self._card(change, base, current, candidate, checks)
        return self._propose(change, body, dry_run)

    # -- rollback ---------------------------------------------------------------------------

    def rollback(
        self,
        model: str,
        env: str,
        reason: str,
        to_version: int | None = None,
        dry_run: bool = False,
        expect_current: int | None = None,
        once: bool = False,
    ) -> Outcome | None:
        """``once``: a pull request of this rollback that is open or was closed unmerged stays as it is
        (an automated caller, such as a duplicate notification, never updates or reopens it)."""
        check_model_name(model)
        check_environment(env)
        if not reason.strip():
            raise InvalidInputError("a rollback needs a reason (--reason)")
        path = self._path(model, env)
        base = self.workspace.fetch_base()
        _, pinned = self._pinned(base, path)
        if self._pin_moved_on(env, expect_current, pinned, "revert"):
            return None
        if pinned is None:
            raise GateFailedError(f"rollback of {model} in {env} refused: Git pins no version there")
        if to_version is None:
            previous: Pin | None = previous_pin(release_history(self.workspace, base.hexsha, path), pinned)
            if previous is None:
                raise GateFailedError(
                    f"rollback of {model} in {env} refused: Git history has no version before v{pinned}; "
                    "give --to-version"
                )
            to_version = previous.version
        _, exists = gates.resolve(self.registry, model, to_version, None)
        checks = [exists, gates.not_running_check(env, pinned, to_version)]
        self.say(f"checks for rolling {model} in {env} back to v{to_version}:\n{gates.format_checks(checks)}")
        gates.enforce(checks, f"rollback of {model} in {env}")
        candidate, current = facts(self.registry, model, to_version), facts(self.registry, model, pinned)
        change = Change("rollback", model, env, path, pinned, to_version, _lineage(candidate), reason.strip())
        if once and not dry_run and not self._direct(change):
            host, target = self.host(), self.settings.base_branch
            existing = host.find_open(change.branch, target)
            if existing is not None:
                self.say(f"the revert pull request is already open: {existing.url}; nothing changed")
                return Outcome("already open", change, None, existing)
            closed = host.find_closed(change.branch, target)
            if closed is not None:
                self.say(f"the revert pull request {closed.url} was closed without merging; not reopened")
                return Outcome("closed before", change, None, closed)
        body = self._card(change, base, current, candidate, checks)
        return self._propose(change, body, dry_run)

    def revert_aborted(
        self, model: str, env: str, aborted: int | None = None, reason: str | None = None, dry_run: bool = False
    ) -> Outcome | None:
        base = self.workspace.fetch_base()
        _, pinned = self._pinned(base, self._path(model, env))
        bad = aborted if aborted is not None else pinned
        if bad is None:
            self.say(f"{env} pins no version of {model}: nothing to revert")
            return None
        text = f"the canary of v{bad} in {env} was aborted by Argo Rollouts; Git must stop pinning it"
        if reason:
            text += f" ({reason})"
        return self.rollback(model, env, text, dry_run=dry_run, expect_current=bad, once=True)

    # -- finalize ---------------------------------------------------------------------------

    def finalize(self, model: str, env: str, expect: int | None = None) -> int | None:
        """Move the ``env`` alias to the version Git pins and tag it; idempotent.

        ``expect``: the version whose rollout completed (from the notification); when Git no longer
        pins it (a late event), nothing changes. A version that already holds the alias with the
        promotion commit of this landing is left as it is (a duplicate event). Returns the version
        finalized, or None when nothing changed.
        """
        check_model_name(model)
        check_environment(env)
        path = self._path(model, env)
        base = self.workspace.fetch_base()
        _, pinned = self._pinned(base, path)
        if self._pin_moved_on(env, expect, pinned, "finalize"):
            return None
        if pinned is None:
            raise GateFailedError(f"finalize of {model} in {env} refused: Git pins no version there yet")
        mv = self.registry.get_version(model, version=pinned)
        pins = release_history(self.workspace, base.hexsha, path)
        landing = pins[-1] if pins and pins[-1].version == pinned else None
        holder = self.registry.version_by_alias(model, env)
        commit = landing.commit if landing else base.hexsha
        if (
            holder is not None
            and int(holder.version) == pinned
            and (mv.tags or {}).get(reg.TAG_PROMOTION_COMMIT.format(env=env)) == commit
        ):
            self.say(f"alias {env!r} of {model} already holds v{pinned}, finalized for commit {commit[:12]}: "
                     "nothing to do")
            return None
        pr_ref = self._merged_pr(model, env, pinned, landing)
        before = f"v{holder.version}" if holder is not None else "no version"
        self.registry.set_alias(model, env, pinned)
        tags = {
            reg.TAG_PROMOTION_PR.format(env=env): pr_ref,
            reg.TAG_PROMOTION_COMMIT.format(env=env): commit,
            reg.TAG_PROMOTION_FINALIZED.format(env=env): datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if landing is not None:
            tags[reg.TAG_PROMOTION_LANDED.format(env=env)] = landing.landed.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.registry.set_version_tags(model, mv.version, tags)
        where = self.settings.base_branch
        self.say(f"alias {env!r} of {model}: {before} -> v{pinned} (the version Git pins on {where})")
        for key, value in tags.items():
            self.say(f"  tag {key}={value}")
        return pinned

    def _pin_moved_on(self, env: str, expected: int | None, pinned: int | None, what: str) -> bool:
        """True (and says so) when an event names a version Git no longer pins in ``env``: a late event."""
        if expected is None or pinned == expected:
            return False
        shown = f"v{pinned}" if pinned is not None else "no version"
        self.say(f"{env} no longer pins v{expected} (Git pins {shown}): nothing to {what}")
        return True

    def _merged_pr(self, model: str, env: str, version: int, landing: Pin | None) -> str:
        if self.settings.repository and self.settings.token is not None:
            host = self.host()
            found = [
                pr
                for kind in ("promote", "rollback")
                if (pr := host.find_merged(f"{kind}/{model}/{env}/v{version}", self.settings.base_branch))
            ]
            if landing is not None:
                exact = [pr for pr in found if pr.merge_commit == landing.commit]
                found = exact or found
            if found:
                return max(found, key=lambda pr: pr.number).url
        if landing is not None and landing.pr_number is not None:
            return f"#{landing.pr_number}"
        return "-"

    # -- history ----------------------------------------------------------------------------

    def history(self, model: str, env: str, rev: str | None = None) -> list[Pin]:
        path = self._path(model, env)
        if rev is None:
            rev = self.workspace.fetch_base().hexsha
        return release_history(self.workspace, rev, path)

    # -- shared -----------------------------------------------------------------------------

    def _card(
        self, change: Change, base: Commit, current: VersionFacts, candidate: VersionFacts, checks: list[gates.Check]
    ) -> str:
        effect = merge_effect(
            self.workspace, base, self.settings.models_dir, change.model, change.env, self.settings.kubectl
        )
        return render_card(
            kind=change.kind,
            model=change.model,
            env=change.env,
            release_file=change.path,
            current=current,
            candidate=candidate,
            checks=checks,
            drift=self._drift_status(change.model, change.env, current),
            merge_effect=effect,
            reason=change.reason,
        )

    def _direct(self, change: Change) -> bool:
        return change.env == reg.STAGING and self.settings.staging_direct_commit

    def _propose(self, change: Change, body: str, dry_run: bool) -> Outcome:
        direct = self._direct(change)
        if dry_run:
            base = self.workspace.fetch_base()
            text, _ = self._pinned(base, change.path)
            new_text = set_model_version(text, change.new, change.path)
            diff = "".join(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    new_text.splitlines(keepends=True),
                    f"a/{change.path}",
                    f"b/{change.path}",
                )
            )
            where = (
                f"commit directly to {self.settings.base_branch}"
                if direct
                else f"push branch {change.branch} and open or update its pull request"
            )
            self.say(f"dry run: would {where}; nothing written\n\n{diff}")
            self.say(f"commit message:\n{change.message}")
            if not direct:
                self.say(f"pull request: {change.title}\n\n{body}")
            return Outcome("dry run", change)
        host = None if direct else self.host()  # fail fast on a missing token before any push
        commit, landed = self._push(change, direct)
        if landed:
            where = self.settings.base_branch
            self.say(f"{where} already pins {change.model} v{change.new} in {change.env}: nothing to do")
            return Outcome("already landed", change, commit)
        if direct:
            self.say(f"committed {commit[:12]} to {self.settings.base_branch}: {change.title}")
            return Outcome("committed", change, commit)
        assert host is not None
        labels = [*self.settings.label_list, f"env:{change.env}", f"model:{change.model}"]
        if change.kind == "rollback":
            labels.append("rollback")
        title = change.title
        pr, action = upsert(host, change.branch, self.settings.base_branch, title, body, labels)
        self.say(f"pull request {action}: {pr.url} ({title})")
        return Outcome(action, change, commit, pr)

    def _push(self, change: Change, direct: bool) -> tuple[str, bool]:
        """Commit ``change`` on the latest base and push it; retry when the remote moved.

        Returns the commit and whether the base branch already pinned the new version.
        """
        ws = self.workspace
        last_error = ""
        for attempt in range(1, self.settings.push_attempts + 1):
            base = ws.fetch_base()
            text, pinned = self._pinned(base, change.path)
            if pinned == change.new:
                return base.hexsha, True
            if pinned != change.old:  # the base moved to another version meanwhile: say so in the title
                change = replace(change, old=pinned)
            files = self._edits(base, change, text)
            try:
                if direct:
                    commit = ws.commit_files(base, files, change.message, self.identity)
                    ws.push(commit.hexsha, self.settings.base_branch)  # a fast-forward or nothing
                    return commit.hexsha, False
                lease = ws.remote_sha(change.branch)
                if lease is not None:
                    tip = ws.fetch(change.branch)
                    self._refuse_foreign(change, base, tip)
                    if self._up_to_date(change, base, tip, files):
                        self.say(f"branch {change.branch} is up to date ({tip.hexsha[:12]})")
                        return tip.hexsha, False
                    self.say(f"branch {change.branch} is stale; rebuilding it on {self.settings.base_branch}")
                commit = ws.commit_files(base, files, change.message, self.identity)
                ws.push(commit.hexsha, change.branch, lease=lease, guarded=True)
                self.say(f"pushed {change.branch} ({commit.hexsha[:12]})")
                return commit.hexsha, False
            except PushRejected as exc:
                last_error = str(exc)
                self.say(f"push rejected (attempt {attempt}/{self.settings.push_attempts}); fetching and retrying")
        target = self.settings.base_branch if direct else change.branch
        raise PromotionConflictError(
            f"push of {target} to {self.settings.remote!r} was rejected {self.settings.push_attempts} times; "
            f"nothing was forced. Last answer: {last_error.splitlines()[-1] if last_error else '-'}"
        )

    def _refuse_foreign(self, change: Change, base: Commit, tip: Commit) -> None:
        commits = self.workspace.commits_between(base, tip)
        # merge commits only bring the base in (a host's "update branch" button); other commits are work
        foreign = [c for c in commits if len(c.parents) == 1 and c.author.email != self.identity.email]
        if foreign:
            who = ", ".join(sorted({f"{c.author.name} <{c.author.email}>" for c in foreign}))
            raise PromotionConflictError(
                f"branch {change.branch} has commits the bot did not make ({who}); the bot never overwrites "
                "them: merge that pull request or delete the branch, then run again"
            )

    def _edits(self, base: Commit, change: Change, text: str) -> dict[str, str]:
        """The files the change writes: the release pin and, for an environment's first version, the
        folder's kustomization.yaml without the unpinned component (which kept it at no pods)."""
        files = {change.path: set_model_version(text, change.new, change.path)}
        kpath = kustomization_path(change.path)
        ktext = self.workspace.read(base, kpath)
        if ktext is not None:
            dropped = drop_unpinned(ktext)
            if dropped != ktext:
                files[kpath] = dropped
        return files

    def _up_to_date(self, change: Change, base: Commit, tip: Commit, files: dict[str, str]) -> bool:
        return (
            [p.hexsha for p in tip.parents] == [base.hexsha]
            and tip.message == change.message
            and self.workspace.changed_paths(tip) == sorted(files)
            and all(self.workspace.read(tip, path) == content for path, content in files.items())
        )
