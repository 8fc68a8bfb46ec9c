"""A local Convox v3 rack for tests and demos: what moto is for AWS, for Convox.

``RackEmulator`` speaks the rack's real HTTP and WebSocket protocol on 127.0.0.1 (docs/rack-api.md
is the reference it follows), so the official CLI, this package's client and users' own DAGs run
against it unchanged. Its pieces, in Convox's words:

- ``state``: apps, builds, releases, objects, services and processes, with the server's rules,
  one model per concern around one shared clock (``RackState`` is their facade);
- ``server``/``websocket``: the HTTP/1.1 and WebSocket surface (asyncio + h11, no framework);
  ``routes`` maps paths to ``handlers`` (HTTP) and ``sockets`` (WebSocket);
- ``builder``/``validation``: what a build pod checks and logs; ``shell``: the built-in shell
  of processes; ``state.files``: each process's files (``convox cp``);
- ``scripts``: what commands, builds and rollouts do (``scriptfile``: the same from YAML/JSON);
  ``faults``: scripted misbehaviour and the log of every request received; ``admin``: the
  loopback ``/_emulator/`` routes; ``timing``: how long things take;
- ``plugin``: the ``convox_rack`` and ``convox_rack_factory`` pytest fixtures;
- ``python -m convox_provider.testing``: run one from a shell.

It never imports Airflow nor the client.
"""

from __future__ import annotations

from .emulator import RackEmulator
from .errors import RackError
from .faults import Fault, FaultPlan, RequestLog, RequestRecord
from .scripts import BuildScript, CommandResult, Invocation, Scripts
from .state import ExecRecord, RackState
from .timing import Timing

__all__ = [
    "BuildScript",
    "CommandResult",
    "ExecRecord",
    "Fault",
    "FaultPlan",
    "Invocation",
    "RackEmulator",
    "RackError",
    "RackState",
    "RequestLog",
    "RequestRecord",
    "Scripts",
    "Timing",
]
