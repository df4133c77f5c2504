"""A jupyter_client kernel manager for a kernel process someone else started (drillbook.kernels).

Kept apart from drillbook.kernels so that launching a kernel never imports
jupyter_client: only attaching to it does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jupyter_client.manager import AsyncKernelManager

if TYPE_CHECKING:
    from drillbook.kernels import LaunchedKernel


class AttachedKernelManager(AsyncKernelManager):
    """Manages nothing but the lifetime questions nbclient asks about an already running kernel."""

    launched: LaunchedKernel

    @classmethod
    def attach(cls, launched: LaunchedKernel) -> AttachedKernelManager:
        manager = cls(connection_file=str(launched.connection_file), transport="ipc")
        manager.load_connection_file()
        manager.launched = launched
        return manager

    # nbclient asks these; the process, not a provisioner, answers them. (jupyter_client
    # declares them as plain attributes bound to coroutine functions, hence the ignores.)
    @property
    def has_kernel(self) -> bool:
        return self.launched.alive

    async def is_alive(self) -> bool:  # type: ignore[override]
        return self.launched.alive

    async def _async_is_alive(self) -> bool:  # what a client of this manager calls
        return self.launched.alive

    async def interrupt_kernel(self) -> None:  # type: ignore[override]
        self.launched.interrupt()

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
        self.launched.stop()
