"""``rempart demo``: the agreement's story, step by step, on a running server or embedded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer

from rempart.cli._app import app, console
from rempart.cli._connect import DEFAULT_DATA_DIR, ConfigFile, DataDir, Server
from rempart.client import Client, Embedded, _Operations
from rempart.config import Config

__all__ = ["demo"]


@contextmanager
def _story_sdk(
    server: str | None, data_dir: Path, config: Path | None
) -> Iterator[tuple[Callable[[str], _Operations], Config, Path]]:
    from rempart.cli.server import deployment_config
    from rempart.client import open as open_embedded
    from rempart.demo import DemoFiles, seed_demo

    cfg, folder = deployment_config(config, data_dir, create=server is None)
    with ExitStack() as stack:
        if server:
            tokens = DemoFiles(folder).read_tokens()
            clients: dict[str, Client] = {}

            def as_principal(pid: str) -> _Operations:
                if pid not in clients:
                    clients[pid] = stack.enter_context(Client(server, tokens[pid]))
                return clients[pid]

            yield as_principal, cfg, folder
            return
        embedded: Embedded = stack.enter_context(open_embedded(cfg))
        seed_demo(embedded.deployment, folder)

        def as_embedded(pid: str) -> _Operations:
            return embedded.acting_as(pid)

        yield as_embedded, cfg, folder


@app.command("demo")
def demo(
    server: Server = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    subject: Annotated[str, typer.Option(help="The demo subject the story follows.")] = "us-0001",
) -> None:
    """Tell the story of the agreement against a running server (--server) or embedded on the data folder."""
    from rempart.demo import tell_story

    where = server or f"the embedded deployment in {data_dir}"
    console.print(f"[bold]Rempart: the agreement, enforced[/] (on {where})\n", highlight=False)
    with _story_sdk(server, data_dir, config) as (as_principal, cfg, folder):
        tell_story(
            as_principal,
            config=cfg,
            data_dir=folder,
            say=lambda text: console.print(text, highlight=False),
            server=server,
            subject=subject,
        )
    console.print(
        "\n[bold green]the story holds:[/] every step above is an entry in the log anyone can verify"
    )
