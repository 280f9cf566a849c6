"""The container files, checked without a Docker engine: parsed, cross-checked against the
settings and each other, and validated by the tools that can run here."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.serve import HTTP_PROTOCOL
from shared.config import Settings

from .conftest import uvicorn_keep_alive
from .files import (
    ROOT,
    Instruction,
    arg_defaults,
    base_images,
    dockerfile,
    env,
    exec_form,
    expand,
    final_stage,
    nginx_directives,
    nginx_seconds,
    nginx_size,
    nginx_values,
    option,
)

COMPOSE = ROOT / "docker-compose.yml"
NGINX = (ROOT / "nginx.conf").read_text()
API = ROOT / "Dockerfile.api"
WORKER = ROOT / "Dockerfile.worker"
DEFAULTS = Settings.model_fields


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    values = service(name).get("environment", {})
    assert isinstance(values, dict), f"{name}: environment as a mapping"
    return {key: str(value) for key, value in values.items()}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


# docker-compose.yml


def test_compose_has_the_production_services() -> None:
    assert {"redis", "api", "worker", "live-worker", "io-worker", "nginx", "prometheus",
            "grafana"} <= set(compose()["services"])
    assert service("api")["deploy"]["replicas"] >= 2


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_monitoring_is_an_optional_profile_with_pinned_images(name: str) -> None:
    """Prometheus and Grafana start with `docker compose --profile monitoring up` only."""
    spec = service(name)
    assert spec["profiles"] == ["monitoring"]
    image, _, tag = spec["image"].partition(":")
    assert image
    assert tag
    assert tag != "latest"
    assert any(ch.isdigit() for ch in tag), spec["image"]
    others = [n for n, s in compose()["services"].items() if "profiles" in s]
    assert sorted(others) == ["grafana", "prometheus"]


def test_worker_reserves_an_nvidia_gpu() -> None:
    [device] = service("worker")["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert "count" in device or "device_ids" in device


def test_healthchecks_and_start_order() -> None:
    assert "redis-cli" in service("redis")["healthcheck"]["test"]
    api_check = " ".join(service("api")["healthcheck"]["test"])
    # Liveness: /readyz would fail (and restart replicas) whenever no worker is up.
    assert "/healthz" in api_check
    assert "/readyz" not in api_check
    assert service("api")["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert service("worker")["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert service("nginx")["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_only_nginx_is_published() -> None:
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            if name != "nginx":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert [str(p).rsplit(":", 1)[1] for p in service("nginx")["ports"]] == ["80"]
    assert nginx_values(NGINX, "listen", "server") == [["80"]]


def test_redis_persists_and_never_evicts() -> None:
    command = service("redis")["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"
    assert any(v.endswith(":/data") for v in service("redis")["volumes"])


def test_volumes() -> None:
    data_dir = environment("api")["VERBATIM_DATA_DIR"]
    assert environment("worker")["VERBATIM_DATA_DIR"] == data_dir
    shared = {v.split(":")[0] for v in service("api")["volumes"] if v.split(":")[1] == data_dir}
    worker_mounts = {v.split(":")[1]: v.split(":")[0] for v in service("worker")["volumes"]}
    assert worker_mounts[data_dir] in shared, "API and worker share the data dir"
    # The model cache (Settings.model_dir) on its own named volume.
    models = worker_mounts[f"{data_dir}/models"]
    assert models in compose()["volumes"]
    named = {v.split(":")[0] for s in compose()["services"].values() for v in s.get("volumes", [])
             if not v.startswith(".")}
    assert named <= set(compose()["volumes"])
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in service("nginx")["volumes"]
    assert any(v.startswith("./deploy/prometheus.yml:") for v in service("prometheus")["volumes"])
    assert any(v.startswith("./deploy/alerts.yml:") for v in service("prometheus")["volumes"])
    assert any(v.split(":")[0] == "grafana-data" for v in service("grafana")["volumes"])


@pytest.mark.parametrize("name", ["api", "worker", "io-worker"])
def test_environment_names_and_values_are_settings(name: str) -> None:
    """Every VERBATIM_* variable is a field of shared/config.py and its value validates."""
    values = {k.removeprefix("VERBATIM_").lower(): v for k, v in environment(name).items()
              if k.startswith("VERBATIM_")}
    assert set(values) <= set(DEFAULTS), set(values) - set(DEFAULTS)
    Settings.model_validate(values)  # the values alone, no environment or .env


def test_worker_runs_int8_on_cuda() -> None:
    for values in (environment("worker"), env(final_stage(dockerfile(WORKER)))):
        assert values["VERBATIM_DEVICE"] == "cuda"
        assert values["VERBATIM_COMPUTE_TYPE"] == "int8_float16"
        assert values["VERBATIM_WORKER_METRICS_PORT"] == "9101"


def test_stopping_a_worker_requeues_its_job_before_docker_kills_it() -> None:
    values = environment("worker")
    for remap in (values, env(final_stage(dockerfile(WORKER)))):
        assert remap["REMAP_SIGTERM"] == "SIGQUIT"  # SIGTERM starts Celery's soft shutdown
    grace = float(values["VERBATIM_WORKER_SHUTDOWN_GRACE_SECONDS"])
    stop = service("worker")["stop_grace_period"]
    assert re.fullmatch(r"\d+m", stop), stop
    assert grace + 30 <= int(stop[:-1]) * 60  # time left to requeue and exit


def test_compose_validates_with_docker_compose_v1(docker_compose_v1: str) -> None:
    """Compose 1.29's `config` checks the file against the Compose Specification schema it
    ships (compose/config/compose_spec.json) without needing a Docker engine."""
    result = run(docker_compose_v1, "--file", str(COMPOSE), "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_validates_with_docker_compose_v2() -> None:
    version = run("docker", "compose", "version") if shutil.which("docker") else None
    if version is None or version.returncode != 0:
        pytest.skip("no Compose v2 here: `docker compose` is not a docker command (no "
                    "docker-compose-plugin package in Debian bookworm); Compose 1.29 checks it")
    result = run("docker", "compose", "--file", str(COMPOSE), "config", "--quiet")
    assert result.returncode == 0, result.stderr


# Dockerfiles


def user_of(instructions: list[Instruction]) -> str:
    users = [i.args for i in final_stage(instructions) if i.name == "USER"]
    assert users, "the final stage sets USER"
    return expand(users[-1], arg_defaults(instructions))


@pytest.mark.parametrize("path", [API, WORKER])
def test_images_run_as_the_same_non_root_user(path: Path) -> None:
    user = user_of(dockerfile(path))
    assert user.split(":")[0] not in ("root", "0", "")
    assert user == user_of(dockerfile(API)), "one uid for the shared data volume"


def test_api_image() -> None:
    instructions = dockerfile(API)
    assert all(image.startswith("python:3.11-slim") for image in base_images(API))
    installs = [i.args for i in instructions if i.name == "RUN" and "pip install" in i.args]
    assert installs == ["pip install '.[api]'"], "only the api extra"
    final = final_stage(instructions)
    assert env(final)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env(instructions)["PIP_NO_CACHE_DIR"] == "1"
    [healthcheck] = [i.args for i in final if i.name == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    [cmd] = [exec_form(i.args) for i in final if i.name == "CMD"]
    assert cmd[:2] == ["uvicorn", "api.main:app"]
    assert option(cmd, "--port") == "8000"
    assert option(cmd, "--http") == HTTP_PROTOCOL  # request heads have a deadline
    # WebSocket frames are bounded as the live settings bound them, not at uvicorn's 16 MiB.
    assert option(cmd, "--ws-max-size") == str(DEFAULTS["live_max_frame_bytes"].default)
    assert "--proxy-headers" in cmd
    assert ["8000"] in [i.args.split() for i in final if i.name == "EXPOSE"]
    assert nginx_values(NGINX, "server", "upstream") == [["api:8000", "resolve"]]


@cache
def ctranslate2_cuda() -> tuple[str, set[int], set[int]]:
    """The installed ctranslate2's version and the CUDA (cuBLAS) and cuDNN majors that its
    shared library loads, read from the binary itself."""
    dist = importlib.metadata.distribution("ctranslate2")
    data = b"".join(Path(str(dist.locate_file(f))).read_bytes() for f in dist.files or []
                    if f.name.startswith("libctranslate2"))
    assert data, "libctranslate2 is part of the installed wheel"
    cublas = {int(m) for m in re.findall(rb"libcublas\.so\.(\d+)", data)}
    cudnn = {int(m) for m in re.findall(rb"libcudnn[a-z_]*\.so\.(\d+)", data)}
    return dist.version, cublas, cudnn


def test_worker_cuda_base_matches_ctranslate2() -> None:
    version, cublas, cudnn = ctranslate2_cuda()
    [cuda] = cublas
    for image in base_images(WORKER):
        tag = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(cudnn\d*-)?runtime-ubuntu[\d.]+",
                           image)
        assert tag, f"{image}: an nvidia/cuda runtime image"
        assert int(tag.group(1)) == cuda, f"ctranslate2 {version} loads libcublas.so.{cuda}"
        if cudnn:
            assert tag.group(4), f"ctranslate2 {version} loads cuDNN {cudnn}: a -cudnn- image"


def test_worker_pins_the_inspected_ctranslate2() -> None:
    pinned = arg_defaults(dockerfile(WORKER))["CTRANSLATE2_VERSION"]
    installed = ctranslate2_cuda()[0]
    if pinned != installed:
        pytest.skip(f"the dev venv has ctranslate2 {installed}, Dockerfile.worker pins "
                    f"{pinned}: check the CUDA base for that wheel and update the pin")


def test_worker_image() -> None:
    instructions = dockerfile(WORKER)
    installs = [i.args for i in instructions if i.name == "RUN" and "pip install" in i.args]
    assert installs == ["pip install '.[worker]' \"ctranslate2==${CTRANSLATE2_VERSION}\""]
    final = final_stage(instructions)
    [cmd] = [exec_form(i.args) for i in final if i.name == "CMD"]
    assert cmd[:4] == ["celery", "-A", "worker.celery_app:app", "worker"]
    assert option(cmd, "--pool") == "prefork"
    assert option(cmd, "--concurrency") == "1"
    port = str(DEFAULTS["worker_metrics_port"].default)
    assert [port] in [i.args.split() for i in final if i.name == "EXPOSE"]
    assert env(final)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env(instructions)["PIP_NO_CACHE_DIR"] == "1"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "data", "tests", "**/__pycache__", ".pytest_cache",
            ".ruff_cache", ".mypy_cache"} <= ignored


def test_dockerfiles_pass_hadolint(hadolint: str) -> None:
    result = run(hadolint, str(API), str(WORKER))
    assert result.returncode == 0, result.stdout + result.stderr


# nginx.conf


def test_nginx_upload_limit_is_the_service_limit() -> None:
    [[size]] = nginx_values(NGINX, "client_max_body_size")
    limit = DEFAULTS["max_upload_bytes"].default
    assert nginx_size(size) == limit
    assert int(environment("api")["VERBATIM_MAX_UPLOAD_BYTES"]) == limit


def test_nginx_streams_uploads_to_the_least_busy_replica() -> None:
    assert nginx_values(NGINX, "proxy_request_buffering") == [["off"]]
    assert nginx_values(NGINX, "least_conn", "upstream") == [[]]
    assert nginx_values(NGINX, "proxy_http_version") == [["1.1"]]


def test_nginx_timeouts() -> None:
    # The server's own; the events location keeps its stream open longer (test_nginx_events).
    [read] = [d.args[0] for d in nginx_directives(NGINX)
              if d.name == "proxy_read_timeout" and d.context[-1] == "server"]
    wait = float(environment("api")["VERBATIM_OPENAI_WAIT_SECONDS"])
    assert nginx_seconds(read) >= max(wait, DEFAULTS["openai_wait_seconds"].default) + 60
    [[keepalive]] = nginx_values(NGINX, "keepalive_timeout", "upstream")
    assert nginx_seconds(keepalive) < int(uvicorn_keep_alive())


def test_nginx_request_id_and_log() -> None:
    headers = dict((a[0], a[1]) for a in nginx_values(NGINX, "proxy_set_header"))
    assert headers["X-Request-ID"] == "$verbatim_request_id"
    assert {"X-Forwarded-For", "X-Forwarded-Proto"} <= set(headers)
    [log_format] = nginx_values(NGINX, "log_format")
    assert log_format[:2] == ["verbatim_json", "escape=json"]
    assert '"request_id":"$verbatim_request_id"' in "".join(log_format)
    assert [args[1] for args in nginx_values(NGINX, "access_log")] == ["verbatim_json"]


def test_nginx_passes_live_sessions_websocket_upgrades() -> None:
    [block] = re.findall(r"location = /v1/live \{[^}]*\}", NGINX)
    live = nginx_directives(block)
    headers = {d.args[0]: d.args[1] for d in live if d.name == "proxy_set_header"}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "upgrade"
    assert headers["X-Request-ID"] == "$verbatim_request_id"
    assert ["off"] in [d.args for d in live if d.name == "proxy_buffering"]


def test_a_live_worker_consumes_the_live_queue_alone() -> None:
    command = compose()["services"]["live-worker"]["command"]
    assert command[command.index("--queues") + 1] == "live"
    assert command[command.index("--pool") + 1] == "solo"


def test_nginx_keeps_metrics_internal() -> None:
    text = re.sub(r"\s+", " ", NGINX)
    assert "location ~ ^/metrics(/|$) { return 404; }" in text


# deploy/prometheus.yml


def test_prometheus_scrapes_each_replica_and_worker(promtool: str) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"] for job in config["scrape_configs"]
            if "dns_sd_configs" in job}
    [api] = jobs["verbatim-api"]
    metrics_port = environment("api")["VERBATIM_METRICS_PORT"]  # /metrics off the API port
    assert (api["names"], api["type"], str(api["port"])) == (["api"], "A", metrics_port)
    assert metrics_port in service("api")["expose"]
    assert environment("api")["VERBATIM_METRICS_HOST"] == "0.0.0.0"
    [worker] = jobs["verbatim-worker"]
    aliases = service("worker")["networks"]["default"]["aliases"]
    assert set(worker["names"]) <= {"worker", *aliases}
    assert worker["port"] == DEFAULTS["worker_metrics_port"].default
    result = run(promtool, "check", "config", "deploy/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_io_worker_consumes_the_io_queue_alone_with_the_shared_data_dir() -> None:
    spec = service("io-worker")
    command = spec["command"]
    assert command[command.index("-A") + 1] == "courier.celery_app:app"
    assert command[command.index("--queues") + 1] == "verbatim.io"
    assert command[command.index("--pool") + 1] == "threads"
    assert spec["image"] == service("api")["image"]  # no model stack
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
    assert mounts[environment("io-worker")["VERBATIM_DATA_DIR"]] == "verbatim-data"
