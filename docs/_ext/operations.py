"""Griffe extension for the API reference: an ``@operation`` method shows what callers get.

The client's routes and workflows are written as ``def get(...) -> Flow[App]`` (a sans-IO
generator) and offered through the ``operation`` descriptor, whose overloads type
``client.apps.get(...)`` as returning ``App`` (``Awaitable[App]`` on ``AsyncConvoxClient``).
The reference shows that return type, not the internal ``Flow`` alias.
"""

from __future__ import annotations

from typing import Any

import griffe

_DECORATORS = ("operation", "stream_operation")


class OperationReturns(griffe.Extension):
    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        names = {str(d.value).rsplit(".", 1)[-1] for d in func.decorators}
        if not names & set(_DECORATORS):
            return
        returns = func.returns
        if isinstance(returns, griffe.ExprSubscript) and str(returns.left) == "Flow":
            func.returns = returns.slice
        func.docstring = func.docstring or griffe.Docstring("", parent=func)
        note = "On `AsyncConvoxClient` the call is awaited for the same result."
        if note not in func.docstring.value:
            func.docstring.value = f"{func.docstring.value}\n\n{note}".strip()
