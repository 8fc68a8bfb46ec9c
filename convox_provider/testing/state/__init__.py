"""The rack's state apart from HTTP, split by concern around one shared clock (moto-style).

- ``clock``: the lock, the queue of due transitions and record stamps every model shares;
- ``apps``: apps, configs, rollouts and services; ``builds``; ``releases`` (and promote);
- ``processes``: pods, one-off runs and exec; ``files``: each pod's files; ``logs``; ``objects``;
- ``system``: system info, instances, registries, webhooks, certificates, JWTs, resources;
- ``rack``: ``RackState``, the facade the handlers, the emulator and tests call.
"""

from __future__ import annotations

from .processes import ExecRecord, RunOptions
from .rack import RackState

__all__ = ["ExecRecord", "RackState", "RunOptions"]
