"""``ConvoxReleaseEventTrigger``: an asset watcher's trigger, one event per new active release.

Used as ``Asset(asset_uri(rack, app), watchers=[AssetWatcher(name=..., trigger=...)])``: every
release an app settles on, whoever made it, starts the DAGs scheduled on that asset.

Where the cursor (the last release reported) lives
--------------------------------------------------

A watcher's trigger runs for as long as the asset is watched, and a triggerer restart re-creates
it from its keyword arguments alone. Those cannot hold the cursor: Airflow identifies a
watcher's trigger by the hash of its class path and keyword arguments (``BaseEventTrigger.hash``:
one trigger per distinct set, shared by the assets that declare it), so arguments that changed
with every release would make a new trigger each time. The cursor is therefore kept outside:

* Airflow 3.3+: in the **asset state store** of the watched asset, which the triggerer hands to
  the trigger as ``asset_state_store`` (key :data:`CURSOR_KEY`).
* Airflow 3.1 and 3.2, which have no asset state store, and a trigger watching several assets
  at once (the same trigger declared on two assets): in the **Airflow Variable**
  :func:`cursor_variable` names, through the Task SDK (``Variable.get``/``set``: the only
  durable store a 3.1 trigger can write; it has no access to the metadata database, so it
  cannot read the asset's last event either). The Variable is shown in the UI; deleting it
  makes the watcher start again from the release the app runs then.

The rack itself cannot be the cursor: it keeps no record of which releases were active, only
the release list (which also holds releases that were never promoted).

Delivery: the cursor is saved right after the event is handed to the triggerer, so a restart
between the two (a few milliseconds) reports that release again; a restart at any other time
neither repeats nor misses one. A release made while no triggerer ran is reported once, when
the trigger starts again; several deploys in that time are reported as the last one (the app
runs only that one now). With no cursor yet (a new watcher), the release the app settles on is
recorded as the starting point and not reported; but when the app does not exist yet or has no
release, the starting point is "before its first release" (the cursor ``""``), so that the
first deploy of an app created after its watcher is reported too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from convox_provider.client.waiting import MAX_ERRORS, WaitOptions
from convox_provider.triggers._base import _pooled_client
from convox_provider.triggers._events import describe

if TYPE_CHECKING:
    from convox_provider.client.models import Release
    from convox_provider.client.workflows.events import WorkflowEvent

__all__ = ["CURSOR_KEY", "WATCH_TIMEOUT", "ConvoxReleaseEventTrigger", "cursor_variable"]

BEFORE_FIRST_RELEASE = ""
"""``client.workflows.watch.BEFORE_FIRST_RELEASE``, the cursor of a watch begun before the app
had a release (not imported from there: DAG files import this module, which stays light)."""

CURSOR_KEY = "convox_release_cursor"
"""The asset state store key of the last release reported (``{"release_id": ...}``)."""

WATCH_TIMEOUT = 3600.0
"""Seconds one client watch lasts before the trigger starts another (and so reads the
connection again: a rotated deploy key is picked up within this time)."""


def cursor_variable(convox_conn_id: str, app: str) -> str:
    """The Airflow Variable that holds the cursor where there is no asset state store."""
    return f"{CURSOR_KEY}__{convox_conn_id}__{app}"


class _Cursor(Protocol):
    """Where the last release reported is kept."""

    where: str

    async def load(self) -> str | None: ...

    async def save(self, release_id: str) -> None: ...


class _AssetStateCursor:
    """The cursor in the asset state store of the one watched asset (Airflow 3.3+)."""

    where = f"the asset state store (key {CURSOR_KEY!r})"

    def __init__(self, store: Any) -> None:
        self._store = store

    async def load(self) -> str | None:
        try:
            return _release_of(await self._store.aget(CURSOR_KEY, None))
        except ValueError as exc:  # "... concrete inlets and outlets": several assets
            raise _SeveralAssets(str(exc)) from None

    async def save(self, release_id: str) -> None:
        await self._store.aset(CURSOR_KEY, {"release_id": release_id})


class _SeveralAssets(Exception):
    """The trigger watches several assets: the store needs to be told which one."""


class _VariableCursor:
    """The cursor in an Airflow Variable (Airflow 3.1 and 3.2)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.where = f"the Airflow Variable {key!r}"

    async def load(self) -> str | None:
        from airflow.sdk import Variable  # noqa: PLC0415 - only where it is used
        from asgiref.sync import sync_to_async  # noqa: PLC0415

        value = await sync_to_async(Variable.get)(self.key, None, deserialize_json=True)
        return _release_of(value)

    async def save(self, release_id: str) -> None:
        from airflow.sdk import Variable  # noqa: PLC0415 - only where it is used
        from asgiref.sync import sync_to_async  # noqa: PLC0415

        await sync_to_async(Variable.set)(self.key, {"release_id": release_id}, serialize_json=True)


def _release_of(value: Any) -> str | None:
    """The cursor in a stored value (``""``: :data:`BEFORE_FIRST_RELEASE`), or None."""
    if isinstance(value, dict) and isinstance(value.get("release_id"), str):
        return str(value["release_id"])
    return None


class ConvoxReleaseEventTrigger(BaseEventTrigger):
    """Yield one event per new active release of ``app``, forever (an ``AssetWatcher`` trigger).

    A release is reported once the app has settled on it (``running`` twice in a row on it) and
    it is newer than the last one reported (``client.releases.wait_for_new_release``): promotes,
    rollbacks and environment changes made from Airflow, the CLI, the console or CI alike; a
    rollout that was rolled back is not reported. The event's payload (the asset event's
    ``extra["payload"]``): ``app``, ``release_id``, ``build_id``, ``description`` (the rack's,
    e.g. ``env add:KEY``: keys, never values), ``created`` (ISO 8601 or None) and
    ``previous_release``. Where the cursor is kept across triggerer restarts, and what a
    restart may repeat: see the module documentation.

    Failed polls never end the trigger: transient errors are retried as by every Convox wait
    (``max_errors`` in a row are logged as an error), and any other error (a wrong key, an app
    that does not exist yet) is logged and tried again every ``poll_interval`` seconds. Every
    watcher on one connection shares the hook's pooled client (one connection pool per
    connection in the triggerer).

    :param app: the Convox app to watch.
    :param convox_conn_id: the Airflow connection of the rack.
    :param poll_interval: seconds between two looks at the app (default 30).
    """

    max_errors = MAX_ERRORS
    """Consecutive transient errors after which each further one is logged as an error, and
    tries at saving the cursor."""

    def __init__(
        self, *, app: str, convox_conn_id: str = "convox_default", poll_interval: float = 30.0
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.app = app
        self.convox_conn_id = convox_conn_id
        self.poll_interval = WaitOptions(poll_interval=float(poll_interval)).poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (JSON-native); no cursor (see the module doc)."""
        names = ("app", "convox_conn_id", "poll_interval")
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            name: getattr(self, name) for name in names
        }

    @property
    def subject(self) -> str:
        """What this trigger watches, in words."""
        return f"new releases of app {self.app} (connection {self.convox_conn_id})"

    def _variable(self) -> _VariableCursor:
        return _VariableCursor(cursor_variable(self.convox_conn_id, self.app))

    async def _load(self) -> tuple[_Cursor, str | None]:
        """The cursor's store and the cursor: the asset state store when the triggerer gave
        one (Airflow 3.3+) for a single asset, else the Variable."""
        store = getattr(self, "asset_state_store", None)
        if store is not None:
            cursor: _Cursor = _AssetStateCursor(store)
            try:
                return cursor, await self._retrying(
                    cursor.load, f"read the cursor from {cursor.where}"
                )
            except _SeveralAssets:
                self.log.warning(
                    "This trigger watches several assets; its cursor is kept in the Variable %r",
                    self._variable().key,
                )
        cursor = self._variable()
        return cursor, await self._retrying(cursor.load, f"read the cursor from {cursor.where}")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Watch until cancelled, yielding one event per new active release."""
        cursor, since = await self._load()
        if since is None:
            since = await self._origin()
            await self._save(cursor, since)
        elif since == BEFORE_FIRST_RELEASE:
            self.log.info(
                "Watching %s from before its first release (from %s)", self.subject, cursor.where
            )
        else:
            self.log.info(
                "Watching %s after release %s (from %s)", self.subject, since, cursor.where
            )
        while True:
            release = await self._next_release(since)
            self.log.info("App %s runs a new release: %s", self.app, release.id)
            yield TriggerEvent(self._payload(release, since))  # type: ignore[no-untyped-call]
            since = release.id
            await self._save(cursor, since)

    async def _origin(self) -> str:
        """The starting point of a watch with no cursor (``client.releases.watch_origin``)."""
        origin = await self._retrying(self._watch_origin, f"read app {self.app}")
        if origin == BEFORE_FIRST_RELEASE:
            self.log.info(
                "Watching %s from before its first release (the app has none yet): its first "
                "release will be reported",
                self.subject,
            )
            return BEFORE_FIRST_RELEASE
        first = await self._next_release(None)
        self.log.info(
            "Watching %s from release %s, the one it runs now (not reported)",
            self.subject,
            first.id,
        )
        return first.id

    async def _watch_origin(self) -> str | None:
        async with _pooled_client(self.convox_conn_id) as client:
            return await client.releases.watch_origin(self.app)

    def _payload(self, release: Release, previous: str) -> dict[str, Any]:
        """The event's payload (``previous_release`` None for an app's first release)."""
        return {
            "app": self.app,
            "release_id": release.id,
            "build_id": release.build,
            "description": release.description,
            "created": None if release.created is None else release.created.isoformat(),
            "previous_release": previous or None,
        }

    async def _next_release(self, since: str | None) -> Release:
        """The next release the app settles on after ``since``; errors are logged and the watch
        goes on."""
        from convox_provider.client.errors import ConvoxWaitTimeoutError  # noqa: PLC0415

        failures = 0
        while True:
            try:
                async with _pooled_client(self.convox_conn_id) as client:
                    return await client.releases.wait_for_new_release(
                        self.app,
                        since=since,
                        waiting=WaitOptions(
                            timeout=WATCH_TIMEOUT,
                            poll_interval=self.poll_interval,
                            initial_delay=0.0,
                            max_errors=self.max_errors,
                            on_event=self._log_event,
                        ),
                    )
            except ConvoxWaitTimeoutError:
                failures = 0  # an hour without a new release: watch again
            except Exception as exc:
                failures += 1
                await self._pause_after(
                    exc, f"Watching {self.subject} failed ({failures} in a row)"
                )

    async def _retrying(self, action: Any, what: str) -> Any:
        """Await ``action()`` until it succeeds, logging each failure (the cursor must be known
        before watching: without it a release made meanwhile would be taken as the start)."""
        while True:
            try:
                return await action()
            except _SeveralAssets:
                raise
            except Exception as exc:
                await self._pause_after(exc, f"Could not {what}", logging.WARNING)

    async def _pause_after(self, exc: Exception, what: str, level: int = logging.ERROR) -> None:
        """Log ``what`` went wrong, then wait a poll interval before trying again."""
        self.log.log(
            level,
            "%s; trying again in %gs: %s: %s",
            what,
            self.poll_interval,
            type(exc).__name__,
            exc,
        )
        await asyncio.sleep(self.poll_interval)

    async def _save(self, cursor: _Cursor, release_id: str) -> None:
        """Save the cursor, ``max_errors`` tries at most; then log that a restart before the next
        save would report this release again."""
        for attempt in range(1, self.max_errors + 1):
            try:
                await cursor.save(release_id)
                return
            except Exception as exc:
                level = logging.ERROR if attempt == self.max_errors else logging.WARNING
                self.log.log(
                    level,
                    "Could not save release %s as the cursor in %s (try %d of %d): %s: %s",
                    release_id,
                    cursor.where,
                    attempt,
                    self.max_errors,
                    type(exc).__name__,
                    exc,
                )
                if attempt < self.max_errors:
                    await asyncio.sleep(self.poll_interval)

    def _log_event(self, event: WorkflowEvent) -> None:
        level, message = describe(event)
        self.log.log(level, "%s", message)
