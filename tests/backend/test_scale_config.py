"""deploy/ray-serve.yaml is a valid Ray Serve config whose builder (scale/config_app.build_app)
makes the application from serve's own flags, refuses a token in the file and any start without
one; the generator options follow --replicas and --autoscale. No cluster is started."""
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")
yaml = pytest.importorskip("yaml")

from ray import serve  # noqa: E402
from ray.serve.schema import ServeDeploySchema  # noqa: E402

from posebridge.backend.scale import config_app, ray_app  # noqa: E402
from posebridge.backend.scale.options import ScaleOptions  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "ray-serve.yaml"
TOKEN_ENV = "POSEBRIDGE_BACKEND_TOKEN"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "")


def local_args(config, tmp_path, tiny_model, **changes) -> dict:
    args = dict(config["applications"][0]["args"])
    args.update({"model": str(tiny_model.base), "work-dir": str(tmp_path), "host": "127.0.0.1", "device": "cpu"})
    args.update(changes)
    return args


def test_the_config_file_is_a_valid_serve_config(config):
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert app.import_path == "posebridge.backend.scale.config_app:build_app"
    names = {d["name"] for d in config["applications"][0]["deployments"]}
    assert names == {ray_app.Generator.name, ray_app.Ingress.name}
    assert "token" not in app.args  # never in the file


def test_the_builder_makes_the_application_with_the_token_from_the_environment(config, tmp_path, tiny_model,
                                                                             monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    assert isinstance(config_app.build_app(local_args(config, tmp_path, tiny_model)), serve.Application)


def test_the_builder_takes_a_token_file(config, tmp_path, tiny_model, no_token):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    args = local_args(config, tmp_path, tiny_model, host="0.0.0.0", **{"token-file": str(token_file)})
    assert isinstance(config_app.build_app(args), serve.Application)


def test_the_builder_refuses_a_token_in_the_file_and_a_start_without_one(config, tmp_path, tiny_model, no_token,
                                                                       capsys):
    with pytest.raises(ValueError, match="does not belong in a config file"):
        config_app.build_app(local_args(config, tmp_path, tiny_model, token="visible-to-all"))
    with pytest.raises(SystemExit):  # loopback too: the proxy's real address is not known here
        config_app.build_app(local_args(config, tmp_path, tiny_model))
    assert f"no token: set {TOKEN_ENV}" in capsys.readouterr().err


def test_the_builder_needs_a_work_folder(config, tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    args = local_args(config, tmp_path, tiny_model)
    del args["work-dir"]
    with pytest.raises(SystemExit):
        config_app.build_app(args)
    assert "work-dir is needed" in capsys.readouterr().err


def test_the_generator_options_follow_replicas_or_autoscale():
    fixed = ray_app.generator_options(ScaleOptions(3, 3), gpus=True)
    assert fixed == {"ray_actor_options": {"num_cpus": 1, "num_gpus": 1}, "num_replicas": 3}
    scaled = ray_app.generator_options(ScaleOptions(1, 4, replica_threads=2), gpus=False)
    assert scaled["ray_actor_options"] == {"num_cpus": 2}
    assert scaled["autoscaling_config"]["min_replicas"] == 1 and scaled["autoscaling_config"]["max_replicas"] == 4
    assert "num_replicas" not in scaled
