"""`elserve users ...`: the built-in users' passwords, as Elasticsearch's `elasticsearch-reset-password`."""

from __future__ import annotations

from typing import Annotated

import typer

from elserve.cli.options import DEFAULTS, DataDir, StoreUrl, settings_from
from elserve.cli.startup import check_store_reachable
from elserve.settings import ServeFlags

users_app = typer.Typer(help="Manage the built-in users.", no_args_is_help=True)


@users_app.command("reset-password")
def reset_password(
    user: Annotated[str | None, typer.Argument(help="The user (default: elastic).", show_default=False)] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="The user, as elasticsearch-reset-password takes it.")
    ] = None,
    enable: Annotated[
        bool,
        typer.Option("--enable", help="Also enable the user if it is disabled (not in elasticsearch-reset-password)."),
    ] = False,
    data_dir: DataDir = DEFAULTS.data_dir,
    store: StoreUrl = None,
) -> None:
    """Generate a new password for a native user and print it (as elasticsearch-reset-password does).

    Works on a stopped or a running server's data directory: the store is SQLite in WAL mode, and a
    running server checks the stored hash on every request, so the old password stops working at once.
    With --store, in the database several front ends share: on every one of them at once.
    A disabled user stays disabled (as with Elasticsearch's tool) unless --enable is given; either way
    the command says so.
    """
    from elserve.security.passwords import generate_password
    from elserve.security.users import UserStore
    from elserve.store import open_store

    name = user or username or "elastic"
    settings = settings_from(ServeFlags(data_dir=data_dir, store=store))
    check_store_reachable(store)
    if store is None and not settings.store_path.exists():
        raise typer.BadParameter(f"no elserve data in [{data_dir}]", param_hint="--data-dir")
    repo = open_store(store, settings.store_path)
    try:
        users = UserStore(repo)
        found = users.get(name)
        if found is None:
            raise typer.BadParameter(f"user [{name}] does not exist")
        password = generate_password()
        users.set_password(name, password)
        if not found.enabled and enable:
            users.set_enabled(name, True)
    finally:
        repo.close()
    if not found.enabled:
        if enable:
            typer.echo(f"The [{name}] user was disabled and is now enabled.")
        else:
            typer.echo(
                f"warning: the [{name}] user is disabled: this password logs in only once it is enabled "
                f"(run this command again with --enable, or POST /_security/user/{name}/_enable).",
                err=True,
            )
    typer.echo(f"Password for the [{name}] user successfully reset.\nNew value: {password}")
