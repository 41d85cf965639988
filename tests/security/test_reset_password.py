from pathlib import Path

from typer.testing import CliRunner

from elserve.cli import app
from elserve.security.users import UserStore, parse_put_user
from elserve.settings import ServerSettings
from elserve.store import SqliteRepository


def test_reset_password_of_any_native_user_in_a_stopped_servers_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    repo = SqliteRepository(ServerSettings(data_dir=data).store_path)
    users = UserStore(repo)
    users.bootstrap_elastic("elastic-pass")
    users.put(parse_put_user("bob", {"password": "bob-pass", "roles": []}))
    repo.close()
    runner = CliRunner()
    for argv, name in ((["bob"], "bob"), (["-u", "elastic"], "elastic"), ([], "elastic")):
        result = runner.invoke(app, ["users", "reset-password", *argv, "--data-dir", str(data)])
        assert result.exit_code == 0, result.output
        assert f"Password for the [{name}] user successfully reset." in result.output
        new = result.output.rsplit("New value: ", 1)[1].strip()
        repo = SqliteRepository(ServerSettings(data_dir=data).store_path)
        assert UserStore(repo).authenticate(name, new).username == name
        repo.close()
    missing = runner.invoke(app, ["users", "reset-password", "nobody", "--data-dir", str(data)])
    assert missing.exit_code != 0 and "user [nobody] does not exist" in " ".join(
        missing.output.replace("│", " ").split()
    )


def test_reset_password_of_a_disabled_user_says_so_or_enables_it(tmp_path: Path) -> None:
    """Issue 24 row 13: the password is reset either way (as elasticsearch-reset-password does); the user
    stays disabled and a warning says so, unless --enable."""
    data = tmp_path / "data"
    repo = SqliteRepository(ServerSettings(data_dir=data).store_path)
    users = UserStore(repo)
    users.bootstrap_elastic("elastic-pass")
    users.set_enabled("elastic", False)
    repo.close()
    runner = CliRunner()
    kept = runner.invoke(app, ["users", "reset-password", "--data-dir", str(data)])
    assert kept.exit_code == 0, kept.output
    assert "the [elastic] user is disabled" in kept.stderr
    enabled = runner.invoke(app, ["users", "reset-password", "--enable", "--data-dir", str(data)])
    assert enabled.exit_code == 0, enabled.output
    assert enabled.stdout.startswith("The [elastic] user was disabled and is now enabled.\n")
    repo = SqliteRepository(ServerSettings(data_dir=data).store_path)
    assert UserStore(repo).authenticate("elastic", enabled.stdout.rsplit("New value: ", 1)[1].strip()).enabled
    repo.close()


def test_tls_flags_go_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--ssl-certfile", str(tmp_path / "c.pem"), "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    words = " ".join(result.output.replace("│", " ").split())  # typer draws the error in a box
    assert "--ssl-certfile and --ssl-keyfile go together" in words


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    """Issue 24 row 12: a value that is not an address is refused, not silently ignored as uvicorn would."""
    result = CliRunner().invoke(
        app, ["serve", "--trusted-proxies", "10.0.0.1,proxy.local", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    words = " ".join(result.output.replace("│", " ").split())
    assert "[proxy.local] is not an IP address or network" in words
