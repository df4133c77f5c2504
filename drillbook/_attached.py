"""A jupyter_client kernel manager for a kernel process someone else started (drillbook.kernels).

Kept apart from drillbook.kernels so that launching a kernel never imports
jupyter_client: only attaching to it does.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import TYPE_CHECKING, Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

if TYPE_CHECKING:
    from drillbook.kernels import LaunchedKernel


class ReadyKernelClient(AsyncKernelClient):
    """A client that knows the kernel is ready as soon as it is, not 0.2 s later.

    jupyter_client's `wait_for_ready` ends by draining IOPub until it has been
    silent for 0.2 s, a fifth of a second per notebook. Here the handshake ends at
    the kernel's `idle` status for our own `kernel_info` request: seeing it on
    IOPub proves both channels connected, and nothing of the handshake is left to
    drain (nbclient ignores messages that answer other requests anyway).
    """

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            request = self.kernel_info()
            try:
                reply: dict[str, Any] = await self.shell_channel.get_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply" and await self._idle_after(request):
                    self._handle_kernel_info_reply(reply)
                    return
            except Empty:
                pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _idle_after(self, request: str) -> bool:
        """True once IOPub says the kernel is idle after `request`; False when IOPub stays silent
        (its subscription was not connected yet: the caller asks again)."""
        while True:
            try:
                msg: dict[str, Any] = await self.iopub_channel.get_msg(timeout=0.2)
            except Empty:
                return False
            if (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") == request
            ):
                return True

    wait_for_ready = _async_wait_for_ready  # jupyter_client binds the public name to its own


class AttachedKernelManager(AsyncKernelManager):
    """Manages nothing but the lifetime questions nbclient asks about an already running kernel."""

    launched: LaunchedKernel
    client_class = "drillbook._attached.ReadyKernelClient"
    client_factory = Type(klass=ReadyKernelClient)

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
