"""Resources: the app's databases and caches, and rack-level webhooks (docs/rack-api.md §4.9)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from convox_provider.client.encoding import Fields, segment
from convox_provider.client.models import Resource as ResourceModel
from convox_provider.client.models import ResourceType
from convox_provider.client.operation import (
    Call,
    D,
    Resource,
    operation,
    parse_list,
    parse_model,
    parse_ok,
)
from convox_provider.client.resources._common import app_path, hidden

__all__ = ["Resources"]


def _rack_resource_path(name: str) -> str:
    return "/resources/" + segment(name, kind="resource name")


class Resources(Resource[D]):
    """``client.resources``.

    ``system_update``, ``system_link`` and ``system_unlink`` are sent as the official SDK sends
    them, but v3 racks always answer 400 ``unavailable on v3 racks``
    (``ConvoxValidationError``, §8 item 10). Database dump export/import and the resource
    console are streams outside this module. Resource ``url`` and ``parameters`` hold
    credentials: they are masked in ``repr``.
    """

    @operation
    def list(self, app: str) -> Call[builtins.list[ResourceModel]]:
        """The resources declared in the app's active manifest."""
        return Call("GET", app_path(app, "resources"), parse_list(ResourceModel))

    @operation
    def get(self, app: str, name: str) -> Call[ResourceModel]:
        """One app resource, with its connection ``url``."""
        path = app_path(app, "resources", segment(name, kind="resource name"))
        return Call("GET", path, parse_model(ResourceModel))

    @operation
    def system_list(self) -> Call[builtins.list[ResourceModel]]:
        """The rack-level resources (webhooks on v3)."""
        return Call("GET", "/resources", parse_list(ResourceModel))

    @operation
    def system_get(self, name: str) -> Call[ResourceModel]:
        """One rack-level resource."""
        return Call("GET", _rack_resource_path(name), parse_model(ResourceModel))

    @operation
    def system_create(
        self,
        kind: str,
        *,
        name: str | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> Call[ResourceModel]:
        """Create a rack-level resource. On v3 the only ``kind`` is ``webhook``, whose single
        parameter is ``Url``: ``system_create("webhook", name="deploys",
        parameters={"Url": "https://…"})``; other kinds get 400 ``rack resource type unknown``.

        ``parameters`` travel as ONE url-encoded field, the form the rack reads; the official
        SDK's ``parameters[Url]`` fields are ignored, so its webhooks fail with ``parameter
        required: Url`` (§8 item 3). Not retried.
        """
        form = Fields().add("kind", kind).add("name", name).add_map("parameters", parameters)
        return Call("POST", "/resources", parse_model(ResourceModel), form=hidden(form))

    @operation
    def system_update(
        self, name: str, *, parameters: Mapping[str, str] | None = None
    ) -> Call[ResourceModel]:
        """``PUT /resources/{name}``; ``parameters`` as ONE url-encoded field (§8 item 3).
        v3 racks answer 400 ``unavailable on v3 racks``. Not retried."""
        form = Fields().add_map("parameters", parameters)
        path = _rack_resource_path(name)
        return Call("PUT", path, parse_model(ResourceModel), form=hidden(form))

    @operation
    def system_link(self, name: str, app: str) -> Call[ResourceModel]:
        """Link a rack resource to ``app`` (``POST /resources/{name}/links``): 400
        ``unavailable on v3 racks`` there. Not retried."""
        segment(app, kind="app name")
        form = Fields().add("app", app)
        path = _rack_resource_path(name) + "/links"
        return Call("POST", path, parse_model(ResourceModel), form=hidden(form))

    @operation
    def system_unlink(self, name: str, app: str) -> Call[ResourceModel]:
        """Unlink ``app`` (``DELETE /resources/{name}/links/{app}``): 400 ``unavailable on v3
        racks`` there. Not retried."""
        path = _rack_resource_path(name) + "/links/" + segment(app, kind="app name")
        return Call("DELETE", path, parse_model(ResourceModel))

    @operation
    def system_delete(self, name: str) -> Call[None]:
        """Delete a rack-level resource."""
        return Call("DELETE", _rack_resource_path(name), parse_ok)

    @operation
    def system_types(self) -> Call[builtins.list[ResourceType]]:
        """The rack-level resource types and their parameters (``OPTIONS /resources``, which the
        rack serves only to the write role). Retried like a GET: it reads only."""
        return Call("OPTIONS", "/resources", parse_list(ResourceType), retry_safe=True)
