"""Extra links of the Convox operators: console pages and the app's service URLs.

Airflow 3 evaluates a task's links on the worker at the end of each try, also the try that
defers, and keeps each URL in XCom (the API server never runs provider code). The links read
what the task pushed before any wait (XCom ``convox_app_page``, ``build_id``, ``release_id``,
``service_urls``), so a deferred task shows its build and release links while it waits.
``convox_app_page`` is pushed for console connections only; a direct rack has no web pages.
A link with nothing to show is the empty string, which the UI leaves out.

No link ever holds credentials: pages are built from the connection's base URL, which never
contains them (:class:`~convox_provider.client.config.ClientConfig`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "APP_PAGE_KEY",
    "SERVICE_URLS_KEY",
    "ConvoxAppLink",
    "ConvoxBuildLink",
    "ConvoxReleaseLink",
    "ConvoxServiceLink",
]

APP_PAGE_KEY = "convox_app_page"
SERVICE_URLS_KEY = "service_urls"


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    from airflow.sdk.execution_time.xcom import XCom  # noqa: PLC0415 - a task's runtime only

    return XCom.get_value(ti_key=ti_key, key=key)


def _page(ti_key: TaskInstanceKey, kind: str, id_key: str) -> str:
    page, ident = _xcom(ti_key, APP_PAGE_KEY), _xcom(ti_key, id_key)
    if not isinstance(page, str) or not page or not isinstance(ident, str) or not ident:
        return ""
    return f"{page}/{kind}/{ident}"


class ConvoxAppLink(BaseOperatorLink):
    """The app's page on the console (console connections)."""

    name = "Convox app"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL, or "" when the connection is not a console one."""
        page = _xcom(ti_key, APP_PAGE_KEY)
        return page if isinstance(page, str) else ""


class ConvoxBuildLink(BaseOperatorLink):
    """The console page of the build the task made or deployed (console connections)."""

    name = "Convox build"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL, or "" before the build id is known."""
        return _page(ti_key, "builds", "build_id")


class ConvoxReleaseLink(BaseOperatorLink):
    """The console page of the release the task made or promoted (console connections)."""

    name = "Convox release"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL, or "" before the release id is known."""
        return _page(ti_key, "releases", "release_id")


class ConvoxServiceLink(BaseOperatorLink):
    """The first public service of the app (by name) once the deploy is done (any connection);
    every service's URL is in XCom ``service_urls``."""

    name = "App service"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL, or "" until the task has read the app's services."""
        urls = _xcom(ti_key, SERVICE_URLS_KEY)
        if not isinstance(urls, dict) or not urls:
            return ""
        first = urls[min(urls)]
        return first if isinstance(first, str) else ""
