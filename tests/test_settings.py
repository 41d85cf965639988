"""`ServerSettings.from_flags`: every bad flag at once, and each good combination builds its settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from elserve.precision import Precision
from elserve.settings import (
    Backend,
    FlagErrors,
    HttpLimits,
    ServeFlags,
    ServerSettings,
    UploadLimits,
    default_max_connections,
)


def _problems(**flags: object) -> list[tuple[str, str]]:
    with pytest.raises(FlagErrors) as caught:
        ServerSettings.from_flags(ServeFlags(**flags))  # type: ignore[arg-type]
    return caught.value.problems


def test_the_defaults_build_the_default_settings() -> None:
    settings = ServerSettings.from_flags(ServeFlags())
    assert settings.precision is Precision.EXACT and settings.backend is Backend.LOCAL
    assert settings.http == HttpLimits(max_connections=default_max_connections())
    assert settings.uploads == UploadLimits()
    assert settings.scale_to_zero_time_s == ServerSettings.scale_to_zero_time_s
    assert settings.model_repository == "https://ml-models.elastic.co/"
    assert (settings.trusted_proxies, settings.ssl_certfile, settings.store) == ((), None, None)


def test_every_bad_flag_is_reported_at_once() -> None:
    problems = _problems(
        precision="fast",
        ml_memory="lots",
        backend="local",
        ray_address="127.0.0.1:6379",
        ray_model_cache=Path("/srv/models"),
        scale_to_zero_time="-1",
        upload_check_timeout="0",
        upload_check_memory="4",
        max_model_upload_store="big",
        disk_flood_stage="120%",
        store="mysql://db",
        ssl_keyfile=Path("key.pem"),
        trusted_proxies="10.0.0.5,bogus",
        http_max_content_length="1",
        http_read_timeout="-1",
        model_repository="no-scheme",
    )
    assert [flag for flag, _ in problems] == [
        "--precision",
        "--ml-memory",
        "--model-repository",
        "--ray-address",
        "--ray-model-cache",
        "--scale-to-zero-time",
        "--upload-check-timeout",
        "--disk-flood-stage",
        "--upload-check-memory",
        "--max-model-upload-store",
        "--store",
        "--ssl-certfile",
        "--trusted-proxies",
        "--http-read-timeout",
        "--http-max-content-length",
    ]
    said = dict(problems)
    assert said["--precision"] == "must be one of exact, bf16, int8"
    assert said["--ray-address"] == said["--ray-model-cache"] == "only with --backend ray"
    assert said["--scale-to-zero-time"] == "must be a duration such as 15m"
    assert said["--upload-check-timeout"] == said["--http-read-timeout"] == "must be a positive time value"
    assert said["--store"] == "must be a postgresql:// URL"
    assert said["--ssl-certfile"] == "--ssl-certfile and --ssl-keyfile go together"
    assert said["--trusted-proxies"] == "[bogus] is not an IP address or network"
    assert "unit is missing or unrecognized" in said["--http-max-content-length"]
    assert "scheme" in said["--model-repository"]


def test_the_message_numbers_every_error_as_elasticsearch_does() -> None:
    with pytest.raises(FlagErrors) as caught:
        ServerSettings.from_flags(ServeFlags(backend="moon", http_max_header_size="x"))
    assert str(caught.value) == (
        "Validation Failed: 1: --backend: must be local or ray;2: --http-max-header-size: failed to parse "
        "setting [--http-max-header-size] with value [x] as a size in bytes: unit is missing or unrecognized;"
    )


def test_a_bad_config_file_names_the_config_flag(tmp_path: Path) -> None:
    config = tmp_path / "elserve.toml"
    config.write_text("model_repository = [")
    [(flag, message)] = _problems(config=config)
    assert flag == "--config" and "cannot be read" in message
    config.write_text('model_repository = "ftp://mirror/"\n')
    [(flag, message)] = _problems(config=config)
    assert flag == "--config" and "ftp" in message


def test_the_ray_backend_without_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the extra
    assert _problems(backend="ray") == [("--backend", "the ray backend needs Ray Serve: pip install 'elserve[ray]'")]


def test_a_store_shared_by_front_ends_may_join_one_ray_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """One owner per Serve application (deployments/rayserve/ownership.py): front ends share a Ray cluster."""
    monkeypatch.setitem(sys.modules, "ray", None)
    problems = _problems(backend="ray", ray_address="127.0.0.1:6379", store="postgresql://u:p@127.0.0.1:9/db")
    assert not [message for _, message in problems if "Ray cluster" in message]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"precision": "exact"}, {"precision": Precision.EXACT}),
        ({"backend": "local"}, {"backend": Backend.LOCAL, "ray_address": None}),
        ({"ml_memory": "4gb", "processors": 2}, {"ml_memory_bytes": 4 * 2**30, "processors": 2}),
        ({"scale_to_zero_time": "15m"}, {"scale_to_zero_time_s": 900.0}),
        (
            {"ssl_certfile": Path("c.pem"), "ssl_keyfile": Path("k.pem")},
            {"ssl_certfile": Path("c.pem"), "ssl_keyfile": Path("k.pem")},
        ),
        ({"trusted_proxies": " 10.0.0.5, 192.168.0.0/24 "}, {"trusted_proxies": ("10.0.0.5", "192.168.0.0/24")}),
        (
            {"http_max_content_length": "1mb", "http_read_timeout": "30s", "http_max_connections": 7},
            {"http": HttpLimits(max_content_length=2**20, read_timeout_s=30.0, max_connections=7)},
        ),
        (
            {"upload_check_timeout": "1m", "upload_check_memory": "4gb", "disk_flood_stage": "500mb"},
            {"uploads": UploadLimits(check_timeout_s=60.0, check_memory_bytes=4 * 2**30, flood_stage="500mb")},
        ),
        ({"model_repository": "file:///srv/ml-models"}, {"model_repository": "file:///srv/ml-models/"}),
        ({"elastic_password": "secret", "log_level": "debug"}, {"elastic_password": "secret", "log_level": "debug"}),
    ],
)
def test_each_good_combination_builds(flags: dict[str, object], expected: dict[str, object]) -> None:
    settings = ServerSettings.from_flags(ServeFlags(**flags))  # type: ignore[arg-type]
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("psycopg", "psycopg_pool")),
    reason="needs the postgres extra",
)
def test_a_postgres_store_builds_without_being_reached() -> None:
    # Whether the database answers is asked at start (cli/startup.py), not while reading the flags.
    url = "postgresql://u:p@127.0.0.1:9/db"
    assert ServerSettings.from_flags(ServeFlags(store=url)).store == url


def test_a_ray_model_cache_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    settings = ServerSettings.from_flags(ServeFlags(backend="ray", ray_model_cache=Path("cache")))
    assert settings.backend is Backend.RAY and settings.ray_model_cache == tmp_path / "cache"
