"""The rack's state apart from HTTP, split by concern around one shared clock (moto-style).

- ``clock``: the lock, the queue of due transitions and record stamps every model shares;
- ``_base``: ``Model``/``AppRecords`` and ``Rack``, the Protocol through which a model reaches
  its siblings (so models never import the facade);
- ``apps``: apps, configs, rollouts and services; ``builds``; ``releases`` (and promote);
- ``processes``: pods, one-off runs and exec; ``files``: each pod's files; ``logs``; ``objects``;
- ``system``: system info, instances, registries, webhooks, certificates, JWTs, resources;
- ``rack``: ``RackState``, the facade the handlers, the emulator and tests call; it builds the
  models and satisfies ``Rack`` (imports run facade -> models -> ``_base`` -> ``clock``).
"""

from __future__ import annotations

from .builds import BuildCreateOptions
from .processes import ExecRecord, RunOptions
from .rack import RackState

__all__ = ["BuildCreateOptions", "ExecRecord", "RackState", "RunOptions"]
