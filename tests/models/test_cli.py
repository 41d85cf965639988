"""`elserve models import / list / rm / download` on a data directory, through typer's CliRunner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elserve.cli import app
from elserve.config_file import model_repository_from, read_config_file
from elserve.deployments.config import DeploymentConfig
from elserve.models.registry import ModelRegistry
from elserve.store import SqliteRepository
from tests.models.hub_mirror import HubRepo, hub_mirror
from tests.models.repository_server import write_package
from tests.support.model_factory import build_bert_dir

runner = CliRunner()


def _registry(data_dir: Path) -> tuple[SqliteRepository, ModelRegistry]:
    repo = SqliteRepository(data_dir / "elserve.db")
    return repo, ModelRegistry(repo)


def test_import_list_rm_a_file_model(tmp_path: Path) -> None:
    source = build_bert_dir(tmp_path / "my-bert")
    data = tmp_path / "data"
    result = runner.invoke(
        app, ["models", "import", f"file:{source}", "--model-id", "my-splade", "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    repo, registry = _registry(data)
    model = registry.get("my-splade")
    repo.close()
    assert model is not None and model.fully_defined and model.source == f"file:{source}"
    assert model.cache_key is not None and (data / "models" / model.cache_key / "model.safetensors").is_file()
    tokenization = model.config["inference_config"]["text_expansion"]["tokenization"]["bert"]
    assert tokenization["do_lower_case"] is True and tokenization["max_sequence_length"] == 64

    listed = runner.invoke(app, ["models", "list", "--data-dir", str(data), "--model-repository", "http://127.0.0.1:9"])
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()}
    assert lines["my-splade"][1:4] == ["imported", "installed", f"file:{source}"]
    assert lines[".elser_model_2"][1:4] == ["built-in", "not installed", "elastic:http://127.0.0.1:9/#elser_model_2"]

    again = runner.invoke(
        app, ["models", "import", f"file:{source}", "--model-id", "my-splade", "--data-dir", str(data)]
    )
    assert again.exit_code == 1 and "Trained machine learning model [my-splade] already exists" in again.output

    removed = runner.invoke(app, ["models", "rm", "my-splade", "--data-dir", str(data)])
    assert removed.exit_code == 0, removed.output
    repo, registry = _registry(data)
    assert registry.get("my-splade") is None
    repo.close()
    assert not (data / "models" / model.cache_key).exists()
    missing = runner.invoke(app, ["models", "rm", "my-splade", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "Could not find trained model [my-splade]" in missing.output


def test_rm_refuses_a_model_in_use(tmp_path: Path) -> None:
    source = build_bert_dir(tmp_path / "my-bert")
    data = tmp_path / "data"
    assert (
        runner.invoke(
            app, ["models", "import", f"file:{source}", "--model-id", "used", "--data-dir", str(data)]
        ).exit_code
        == 0
    )
    repo = SqliteRepository(data / "elserve.db")
    repo.put(
        "deployment",
        "dep-1",
        DeploymentConfig(deployment_id="dep-1", model_id="used", number_of_allocations=1).to_persisted(),
    )
    repo.close()
    result = runner.invoke(app, ["models", "rm", "used", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "Cannot delete model [used] as it is currently used by ['dep-1']" in result.output
    repo, registry = _registry(data)
    model = registry.get("used")
    repo.close()
    assert model is not None and (data / "models" / str(model.cache_key)).is_dir()


def test_import_from_an_elastic_repository_and_a_hub_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    metadata = write_package(tmp_path / "repo", "my_elser", os.urandom(5000))
    result = runner.invoke(
        app,
        [
            "models",
            "import",
            "elastic:my_elser",
            "--model-id",
            "my-elser",
            "--data-dir",
            str(data),
            "--model-repository",
            (tmp_path / "repo").as_uri(),
        ],
    )
    assert result.exit_code == 0, result.output
    hub = HubRepo("org/tiny", build_bert_dir(tmp_path / "hub" / "tiny"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with hub_mirror([hub]) as (endpoint, _):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        result = runner.invoke(app, ["models", "import", "hf:org/tiny", "--model-id", "tiny", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    repo, registry = _registry(data)
    elser, tiny = registry.get("my-elser"), registry.get("tiny")
    repo.close()
    assert elser is not None and elser.source == f"elastic:{(tmp_path / 'repo').as_uri()}/#my_elser"
    assert elser.sha256 == metadata["sha256"]
    assert elser.config["inference_config"] == metadata["inference_config"]
    assert elser.config["description"] == metadata["description"]
    assert tiny is not None and tiny.source == f"hf:org/tiny@{hub.commit}"  # the revision pinned to its commit


def test_bad_arguments(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    bad_id = runner.invoke(app, ["models", "import", "file:/x", "--model-id", "Bad Id", "--data-dir", data])
    assert bad_id.exit_code == 2 and "Invalid model_id" in bad_id.output
    for source, message in (("s3:bucket/x", "unsupported model source"), ("file:/nowhere", "not found")):
        result = runner.invoke(app, ["models", "import", source, "--model-id", "m", "--data-dir", data])
        assert result.exit_code == 1 and message in result.output, result.output
    builtin = runner.invoke(app, ["models", "import", "file:/x", "--model-id", ".elser_model_2", "--data-dir", data])
    assert builtin.exit_code == 2  # a dot first is not a valid id to import
    repo = runner.invoke(app, ["models", "list", "--data-dir", data, "--model-repository", "ftp://mirror/"])
    assert repo.exit_code == 2 and "--model-repository" in repo.output
    serve = runner.invoke(app, ["serve", "--data-dir", data, "--model-repository", "no-scheme"])
    assert serve.exit_code == 2 and "--model-repository" in serve.output and "scheme" in serve.output


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELSERVE_MODEL_REPOSITORY", raising=False)  # the flag's variable would win over the file
    config = tmp_path / "elserve.toml"
    config.write_text('[xpack.ml]\nmodel_repository = "file:///srv/ml-models"\n')
    assert model_repository_from(read_config_file(config)) == "file:///srv/ml-models"
    config.write_text('model_repository = "http://mirror.internal/models"\n')
    assert model_repository_from(read_config_file(config)) == "http://mirror.internal/models"
    listed = runner.invoke(app, ["models", "list", "--data-dir", str(tmp_path / "data"), "--config", str(config)])
    assert listed.exit_code == 0 and "elastic:http://mirror.internal/models/#elser_model_2" in listed.output
    config.write_text("model_repository = [")
    with pytest.raises(ValueError, match="cannot be read"):
        read_config_file(config)


def test_import_writes_owner_only_files_as_the_server_does(tmp_path: Path) -> None:
    """Issue 24 row 13: a real `elserve models import` (its own process, under the usual umask 022) leaves
    0700 directories and 0600 files in the data directory, as the server's own writes."""
    import stat
    import subprocess
    import sys
    import tarfile

    source = build_bert_dir(tmp_path / "my-bert")
    for path in source.iterdir():
        path.chmod(0o644)
    archive = tmp_path / "my-bert.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(source, arcname="my-bert")
    data = tmp_path / "data"
    elserve = Path(sys.executable).with_name("elserve")
    for model_id, src in (("from-dir", source), ("from-archive", archive)):
        done = subprocess.run(
            [
                "sh",
                "-c",
                'umask 022 && exec "$@"',
                "sh",
                str(elserve),
                "models",
                "import",
                f"file:{src}",
                "--model-id",
                model_id,
                "--data-dir",
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    loose = [
        f"{path.relative_to(data)} {oct(stat.S_IMODE(path.stat().st_mode))}"
        for path in [data, *data.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert loose == []


def test_a_models_command_on_an_empty_store_refuses_and_leaves_it(tmp_path: Path) -> None:
    """Issue 24 row 13: a 0-byte elserve.db is not a fresh install, for the CLI either."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "elserve.db").write_bytes(b"")
    result = runner.invoke(app, ["models", "list", "--data-dir", str(data), "--model-repository", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "is empty (0 bytes)" in result.output
    assert (data / "elserve.db").read_bytes() == b""
