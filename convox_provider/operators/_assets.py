"""Deploys as asset events: the operators that change what an app runs declare its asset.

``rack=`` names the rack in the asset URI (:mod:`convox_provider.assets`), because outlets are
declared when the DAG is parsed and the connection is read only when the task runs (reading it
at parse time would cost a lookup per parse and tie the DAG to one secret backend). The URI is
the one a consumer DAG writes by hand: ``convox://acme/production/web``. A task whose
connection reaches another rack is refused before its first request, so an event never names a
rack it did not change. An outlet declared by hand (``outlets=[convox_app_asset(...)]``) for
the task's app is checked and given the same extra.

When the task succeeds, the event of each such asset gets the extra ``app``, ``rack``,
``release_id``, ``build_id``, ``description`` (the release's), ``rollback`` and ``promoted``
(False for an environment change or a copy that was not promoted): one read of the release,
after the work, when there are events. Once a rollout was waited for, the app's service URLs go
to XCom ``service_urls`` (the ``App service`` link): one read of the services. A task with
neither reads nothing more. A read that fails there is logged and leaves its fields empty; the
deploy itself succeeded and its event is emitted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from convox_provider.assets import SCHEME, convox_app_asset, rack_name
from convox_provider.links import SERVICE_URLS_KEY, ConvoxServiceLink
from convox_provider.operators._base import AirflowException, ConvoxBaseOperator, check_argument

if TYPE_CHECKING:
    from airflow.sdk import Asset, BaseOperatorLink

    from convox_provider.client.client import ConvoxClient

__all__ = ["DeploysApp"]


class DeploysApp(ConvoxBaseOperator):
    """A Convox operator whose success is an event of its app's asset.

    :param rack: the rack as the asset URI names it: ``<org>/<rack>`` for a console
        connection, the rack API host for a direct one (a rack URL is reduced to its host, its
        credentials dropped). The task's outlets then include ``convox://<rack>/<app>``.
        Without it (and without a ``convox://`` outlet of the app), no asset event is emitted.
    """

    operator_extra_links: Collection[BaseOperatorLink] = (
        *ConvoxBaseOperator.operator_extra_links,
        ConvoxServiceLink(),
    )

    rollback_event = False
    """Whether the asset event is a rollback (the rollback operator)."""

    def __init__(self, *, rack: str | None = None, **kwargs: Any) -> None:
        task_id = kwargs.get("task_id")
        check_argument(self, "rack", rack, str, optional=True, task_id=task_id)
        if rack is not None:
            try:
                asset = convox_app_asset(rack, kwargs.get("app"))  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"{type(self).__name__} {task_id!r}: {exc}") from None
            given = kwargs.get("outlets") or []
            outlets = list(given) if isinstance(given, (list, tuple)) else [given]
            if asset not in outlets:
                outlets.append(asset)
            kwargs["outlets"] = outlets
        super().__init__(**kwargs)
        self.rack = rack

    def _app_assets(self) -> list[Asset]:
        """The ``convox://`` outlets of this task's app."""
        found: list[Asset] = []
        for outlet in self.outlets or ():
            uri = getattr(outlet, "uri", None)
            if (
                isinstance(uri, str)
                and uri.startswith(f"{SCHEME}://")
                and uri.rsplit("/", 1)[-1] == self.app
            ):
                found.append(outlet)
        return found

    @contextmanager
    def _client(self) -> Iterator[ConvoxClient]:
        """The hook's client, once the assets of this task are known to name its rack."""
        with super()._client() as client:
            config = client.config
            reached = rack_name(config.rack or config.host)
            for asset in self._app_assets():
                named = asset.uri.removeprefix(f"{SCHEME}://").rsplit("/", 1)[0]
                if named != reached:
                    raise AirflowException(
                        f"{type(self).__name__} {self.task_id!r}: its outlet {asset.uri} names "
                        f"rack {named!r}, but connection {self.convox_conn_id!r} reaches "
                        f"{reached!r}, so nothing was sent to the rack. Give rack={reached!r} "
                        "(and schedule consumers on that URI), or use the connection of that rack"
                    )
            yield client

    def post_execute(self, context: Context, result: Any = None) -> None:
        """On success: the deploy's extra on its asset events (one read of the release, only
        when there are events) and, once a rollout was waited for, the app's service URLs to
        XCom (one read); nothing is read for a task without either."""
        super().post_execute(context, result)
        assets = self._app_assets()
        promoted = bool(getattr(self, "promote", True))
        services = promoted and self.wait_for_completion
        release_id = context["ti"].xcom_pull(task_ids=self.task_id, key="release_id")
        if not isinstance(release_id, str) or not release_id or not (assets or services):
            return
        extra: dict[str, Any] = {
            "app": self.app,
            "rack": None,
            "release_id": release_id,
            "build_id": None,
            "description": None,
            "rollback": self.rollback_event,
            "promoted": promoted,
        }
        from convox_provider.client.errors import ConvoxError  # noqa: PLC0415 - module doc

        with self._client() as client:
            try:
                if assets:
                    release = client.releases.get(self.app, release_id)
                    extra["build_id"] = release.build or None
                    extra["description"] = release.description or None
            except ConvoxError as exc:
                self.log.warning("Could not read release %s of the deploy: %s", release_id, exc)
            if services:
                self._push_service_urls(context, client)
        events = context["outlet_events"]
        for asset in assets:
            extra["rack"] = asset.uri.removeprefix(f"{SCHEME}://").rsplit("/", 1)[0]
            events[asset].extra.update(extra)

    def _push_service_urls(self, context: Context, client: ConvoxClient) -> None:
        """The app's public service URLs to XCom ``service_urls`` (a read; best effort)."""
        from convox_provider.client.errors import ConvoxError  # noqa: PLC0415 - module doc

        try:
            services = client.services.list(self.app)
        except ConvoxError as exc:
            self.log.warning("Could not read the services of app %s: %s", self.app, exc)
            return
        urls = {s.name: s.url for s in services if s.url}
        if urls:
            context["ti"].xcom_push(key=SERVICE_URLS_KEY, value=urls)
