"""Every REST route of the rack, grouped as the official SDK groups them (docs/rack-api.md §4).

Each route is a module-level function returning the :class:`~convox_provider.client.effects.Call`
it sends (``builds.get(app, build_id)``); workflows yield those directly, and each module's
resource class offers them to the client as operations (``get = route(get)``).
"""
