"""The bridge's error hierarchy.

::

    BridgeError
    ├── ConfigError       invalid settings; the message names the key and the fix
    ├── PayloadError      an Alertmanager message that can never be valid (4xx)
    ├── StoreError        the store could not read or commit (5xx, retried)
    ├── IntegrationNotFound   no integration has the id (also a LookupError)
    └── IntegrationConflict   the id is taken, or the integration is read-only

`StoreError`, `IntegrationNotFound` and `IntegrationConflict` live in
``bridge.store.base`` beside the interface that raises them.

No message ever contains a secret: errors name keys and ids, not values of
secret fields.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """A setting is missing or invalid; the message names the key and the fix."""


class PayloadError(BridgeError):
    """An Alertmanager webhook body that can never be valid.

    ``field`` is the path of the value at fault, such as ``alerts[3].startsAt``,
    or ``""`` for the body as a whole. ``status`` is the HTTP status to answer.
    """

    def __init__(self, field: str, problem: str, status: int = 422) -> None:
        self.field = field
        self.problem = problem
        self.status = status
        super().__init__(f"{field}: {problem}" if field else problem)
