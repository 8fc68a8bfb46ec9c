"""Releases: create, list, read, promote (docs/rack-api.md §4.4).

Each route is a module-level function building its call: the ``client.releases`` methods, and
what workflows (environment reads, promote and wait, rollback) yield.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from convox_provider.client.encoding import Fields, encode_bool, parse_env, render_env, segment
from convox_provider.client.models import Release
from convox_provider.client.operation import Call, D, Resource, parse_model, parse_ok, route
from convox_provider.client.resources._common import (
    app_path,
    hidden,
    newest_first,
    pairs,
    whole_numbers,
)

__all__ = ["ReleaseRoutes", "create", "get", "list", "submit_promote"]


def _release_path(app: str, release_id: str, *rest: str) -> str:
    return app_path(app, "releases", segment(release_id, kind="release id"), *rest)


def create(
    app: str,
    *,
    build: str | None = None,
    env: Mapping[str, str] | str | None = None,
    description: str | None = None,
    parent_release: str | None = None,
) -> Call[Release]:
    """Create a release; creating never deploys (promote does).

    The new release starts as a copy of ``parent_release``, or else of the NEWEST release
    (not necessarily the active one); ``build`` replaces its build, ``env`` its whole
    environment, ``description`` the generated one (§4.4). ``env`` is a mapping (validated
    and rendered as the CLI does: sorted ``KEY=VALUE`` lines) or a raw env string sent
    verbatim, e.g. another release's ``env`` to copy it exactly. Not retried: a repeat would
    create a second release, which would then be the newest.
    """
    if isinstance(env, str):
        parse_env(env)
        rendered: str | None = env
    else:
        rendered = None if env is None else render_env(env)
    form = (
        Fields()
        .add("build", build)
        .add("env", rendered)
        .add("description", description)
        .add("parent-release", parent_release)
    )
    return Call("POST", app_path(app, "releases"), parse_model(Release), form=hidden(form))


def list(app: str, *, limit: int | None = None) -> Call[builtins.list[Release]]:
    """The newest releases first (by ``created``); the rack returns 10 unless ``limit`` says."""
    return newest_first(app, "releases", Release, limit)


def get(app: str, release_id: str) -> Call[Release]:
    """One release; a missing id is a 500 ``… not found``, raised as ``ConvoxNotFoundError``."""
    return Call("GET", _release_path(app, release_id), parse_model(Release))


def submit_promote(
    app: str,
    release_id: str,
    *,
    force: bool = False,
    timeout: int | None = None,
    min_count: int | None = None,
    max_count: int | None = None,
    idle: bool | None = None,
) -> Call[None]:
    """Submit the rollout of a release and return; the rollout itself is asynchronous.

    One request, no waiting: the app goes ``updating`` and later ``running`` — on this
    release, or back on the previous one after a rollback (compare ``app.release``, §7.4).
    ``force`` is always sent, as the CLI does; without it the rack answers 403 ``app is
    currently updating`` unless the app is ``running``. ``timeout`` is the rollout deadline
    in seconds (rack default 3000). ``min_count``/``max_count`` (the rack's ``min``/``max``)
    override every service's rolling-update minimum/maximum PERCENTAGES. The rack refuses a
    release older than the active one (400): roll back instead. Not retried.
    """
    whole_numbers(timeout=timeout, min_count=min_count, max_count=max_count)
    form = (
        Fields()
        .add("force", encode_bool(force, name="force"))
        .add("timeout", timeout)
        .add("min", min_count)
        .add("max", max_count)
        .add("idle", idle)
    )
    return Call("POST", _release_path(app, release_id, "promote"), parse_ok, form=pairs(form))


class ReleaseRoutes(Resource[D]):
    """The routes of ``client.releases`` (its workflows: :mod:`..workflows.promote`)."""

    create = route(create)
    list = route(list)
    get = route(get)
    submit_promote = route(submit_promote)
