"""`refinevla-bench serve`: host a registered policy for `run --policy ws://HOST:PORT`."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from refinevla_bench.harness.cli_options import PolicyArgs
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import Policy
from refinevla_bench.policies.registry import create_policy, parse_policy_args

if TYPE_CHECKING:
    from websockets.asyncio.server import Server

err_console = Console(stderr=True)


def serve(
    policy: Annotated[str, typer.Option(help="Registered policy to serve.")],
    policy_arg: PolicyArgs = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; loopback unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rows per act() call across all clients; above 1 needs a stateless policy "
            "(1 gives each connection its own policy instance).",
        ),
    ] = 1,
    max_wait_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a batch waits for more rows to join.")
    ] = 5.0,
) -> None:
    """Serve a policy over WebSocket + msgpack until interrupted."""
    # websockets and msgpack (the serve extra) load only when serving
    from refinevla_bench.harness.serving.server import HEALTH_PATH, PolicyServer, bound_port

    options = parse_policy_args(policy_arg or [])

    def make_policy() -> Policy:
        return create_policy(policy, options)

    server = PolicyServer(make_policy, policy, max_batch=max_batch, max_wait_ms=max_wait_ms)

    async def announce(bound: Server) -> None:
        address = f"{host}:{bound_port(bound)}"
        err_console.print(
            f"serving '{policy}' at ws://{address} (health: http://{address}{HEALTH_PATH})"
        )

    async def serve_until_signalled() -> None:
        """SIGINT (Ctrl-C) and SIGTERM (`docker stop`, systemd) both end the server cleanly,
        also when started in the background, where SIGINT arrives ignored."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, task.cancel)
        try:
            await server.serve(host, port, announce)
        except asyncio.CancelledError:
            err_console.print("stopped")

    try:
        asyncio.run(serve_until_signalled())
    except OSError as error:  # the port is taken or the address is not ours
        raise HarnessError(
            f"cannot listen on {host}:{port}: {error}", "pick a free --port (0 picks one)"
        ) from error
