"""The storage interface, so that a server database can replace SQLite later.

Every method that changes state commits before it returns: the HTTP layer
answers Alertmanager 2xx only after such a call came back.
"""

from __future__ import annotations

from typing import Protocol

from bridge.integrations import Integration


class StoreError(Exception):
    """The store could not read or commit; the caller answers 5xx and retries."""


class IntegrationNotFound(LookupError):
    """No integration has the requested id."""


class Store(Protocol):
    """Integration storage; the state and outbox methods sit beside these."""

    def list_integrations(self) -> list[Integration]: ...

    def get_integration(self, integration_id: str) -> Integration:
        """Raises: IntegrationNotFound."""
        ...

    def create_integration(self, integration: Integration) -> Integration: ...

    def update_integration(self, integration: Integration) -> Integration:
        """Raises: IntegrationNotFound."""
        ...

    def delete_integration(self, integration_id: str) -> None:
        """Raises: IntegrationNotFound."""
        ...
