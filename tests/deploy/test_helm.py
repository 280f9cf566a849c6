"""The Helm chart (deploy/helm/verbatim), rendered by a real helm and checked offline: every
manifest against the Kubernetes schemas of a current release (kubernetes-validate) and the
custom resources against the CRDs of KEDA and the Prometheus Operator (tests/deploy/crds); the
settings it gives the processes against Verbatim's own Settings; and the ScaledObject's Redis
keys against the lists a real Celery worker consumes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml
from jsonschema import Draft202012Validator
from kombu.transport.redis import Channel
from support import Process, spawn, wait_until

from shared.config import Settings
from shared.localredis import LocalRedis, free_port
from shared.priorities import PRIORITY_STEPS
from shared.queue import enqueue_transcription, make_celery, model_queues
from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import RECEIVED_KEY, JobStore
from shared.state.requeue import Deliveries

from .files import ROOT, nginx_directives, nginx_seconds, nginx_size, nginx_values
from .helm import CHART, crd_validators, helm_binary, render, render_error

NGINX_CONF = ROOT / "nginx.conf"

EXAMPLES = CHART.parent / "examples"
KUBERNETES_VERSION = "1.37.0"
# KEDA's Redis scaler counts a key with this script (pkg/scalers/redis_scaler.go, Apache-2.0),
# whatever its type: the tests count the rendered keys as KEDA will.
KEDA_LENGTH = """
local listName = KEYS[1]
local listType = redis.call('type', listName).ok
if listType == 'zset' then
  return redis.call('zcard', listName)
elseif listType == 'set' then
  return redis.call('scard', listName)
elseif listType == 'hash' then
  return redis.call('hlen', listName)
elseif listType == 'list' or listType == 'none' then
  return redis.call('llen', listName)
else
  return redis.error_reply('ERR unsupported key type: ' .. listType)
end
"""


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def default_manifests(helm: Path) -> list[dict[str, Any]]:
    return render(helm)


@pytest.fixture(scope="module")
def production_manifests(helm: Path) -> list[dict[str, Any]]:
    return render(helm, EXAMPLES / "production.yaml")


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def unknown_fields(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields the schema does not declare: the API server would drop them without a word
    (a misspelt `scalingModifers` would leave the ScaledObject without its formula)."""
    if isinstance(value, list) and "items" in schema:
        return [f for i, item in enumerate(value)
                for f in unknown_fields(schema["items"], item, f"{path}[{i}]")]
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if "properties" not in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return [f for key, item in value.items()
                    for f in unknown_fields(extra, item, f"{path}.{key}")]
        return []
    found = []
    for key, item in value.items():
        if key not in schema["properties"]:
            found.append(f"{path}.{key}")
        else:
            found += unknown_fields(schema["properties"][key], item, f"{path}.{key}")
    return found


def problems(manifest: dict[str, Any], crds: dict[tuple[str, str], Draft202012Validator]
             ) -> list[str]:
    """What is wrong with one manifest, against its CRD or the Kubernetes schemas."""
    name = f"{manifest['kind']} {manifest['metadata']['name']}"
    validator = crds.get((manifest["apiVersion"], manifest["kind"]))
    if validator is not None:
        errors = [f"{name}: {e.json_path}: {e.message}" for e in validator.iter_errors(manifest)]
        extra = unknown_fields(validator.schema, manifest)
        return errors + [f"{name}: unknown field {field}" for field in extra]
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{name}: {exc.path}: {exc.message}"]
    return []


@pytest.mark.parametrize("values", [None, "production.yaml", "external-redis.yaml"])
def test_every_manifest_validates(helm: Path, values: str | None) -> None:
    manifests = render(helm, *([EXAMPLES / values] if values else []))
    crds = crd_validators()
    found = [problem for manifest in manifests for problem in problems(manifest, crds)]
    assert found == []
    groups = 2 if values else 1
    assert len(of_kind(manifests, "Deployment")) == 2 + groups + (values != "external-redis.yaml")
    assert len(of_kind(manifests, "ScaledObject")) == (1 if values == "external-redis.yaml"
                                                       else groups)
    assert len(of_kind(manifests, "ServiceMonitor")) == (values == "production.yaml")


@pytest.mark.parametrize("values", [None, "production.yaml", "external-redis.yaml"])
def test_chart_lints(helm: Path, values: str | None) -> None:
    args = [str(helm), "lint", "--strict", str(CHART)]
    args += ["--values", str(EXAMPLES / values)] if values else []
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_manifest_is_caught(default_manifests: list[dict[str, Any]]) -> None:
    """The validation above can fail: a misspelt field of a ScaledObject and of a Deployment."""
    crds = crd_validators()
    scaled = next(iter(of_kind(default_manifests, "ScaledObject").values()))
    bad = yaml.safe_load(yaml.safe_dump(scaled))
    bad["spec"]["advanced"]["scalingModifers"] = bad["spec"]["advanced"].pop("scalingModifiers")
    bad["spec"]["maxReplicaCount"] = "four"
    assert len(problems(bad, crds)) == 2
    api = of_kind(default_manifests, "Deployment")["rel-verbatim-api"]
    bad = yaml.safe_load(yaml.safe_dump(api))
    bad["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    assert problems(bad, crds) != []


def container_env(deployment: dict[str, Any], secret: dict[str, Any] | None = None
                  ) -> dict[str, str]:
    """The env of a Deployment's one container, values from the chart's Secret filled in."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif secret is not None:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            if ref["key"] in secret["stringData"] or not ref.get("optional"):
                env[entry["name"]] = secret["stringData"][ref["key"]]
    return env


def test_ingress_keeps_nginx_confs_limits(default_manifests: list[dict[str, Any]]) -> None:
    """The Ingress's body size, timeouts and buffering are nginx.conf's, and its body size is
    the API's own upload limit."""
    nginx = NGINX_CONF.read_text()
    ingresses = of_kind(default_manifests, "Ingress")
    api = ingresses["rel-verbatim-api"]["metadata"]["annotations"]
    streams = ingresses["rel-verbatim-streams"]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    [[size]] = nginx_values(nginx, "client_max_body_size")
    env = container_env(of_kind(default_manifests, "Deployment")["rel-verbatim-api"])
    for notes in (api, streams):
        assert nginx_size(notes[prefix + "proxy-body-size"]) == nginx_size(size)
        assert notes[prefix + "proxy-request-buffering"] == "off"
    assert nginx_size(size) == int(env["VERBATIM_MAX_UPLOAD_BYTES"])
    [server_read] = [d.args[0] for d in nginx_directives(nginx)
                     if d.name == "proxy_read_timeout" and d.context[-1] == "server"]
    assert float(api[prefix + "proxy-read-timeout"]) == nginx_seconds(server_read)
    assert float(api[prefix + "proxy-read-timeout"]) > float(env["VERBATIM_OPENAI_WAIT_SECONDS"])
    stream_reads = {nginx_seconds(d.args[0]) for d in nginx_directives(nginx)
                    if d.name == "proxy_read_timeout" and d.context[-1] == "location"}
    assert stream_reads == {float(streams[prefix + "proxy-read-timeout"])}
    assert streams[prefix + "proxy-buffering"] == "off"
    paths = {p["path"] for rule in ingresses["rel-verbatim-streams"]["spec"]["rules"]
             for p in rule["http"]["paths"]}
    assert any(re.fullmatch(path, "/v1/jobs/0123abc/events") for path in paths)
    assert "/v1/live" in paths


def test_processes_accept_their_settings(
    production_manifests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every VERBATIM_* value the chart gives a process, its Secret's included, is one that
    Verbatim's settings accept and read as meant."""
    (secret,) = of_kind(production_manifests, "Secret").values()
    for deployment in of_kind(production_manifests, "Deployment").values():
        env = container_env(deployment, secret)
        for name in [n for n in env if n.startswith("VERBATIM_")]:
            monkeypatch.setenv(name, env[name])
        settings = Settings()
        assert settings.redis_url == "redis://:s3cret@redis-primary.data.svc:6379/0"
        assert settings.webhook_secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        assert env["VERBATIM_S3_SECRET_ACCESS_KEY"] == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_workers_give_their_job_back_before_they_are_killed(
    production_manifests: list[dict[str, Any]],
) -> None:
    """A stop starts Celery's soft shutdown, whose grace ends well before the kubelet's."""
    workers = {name: d for name, d in of_kind(production_manifests, "Deployment").items()
               if "-worker-" in name}
    assert sorted(workers) == ["rel-verbatim-worker-a100", "rel-verbatim-worker-t4"]
    for deployment in workers.values():
        env = container_env(deployment)
        spec = deployment["spec"]["template"]["spec"]
        assert env["REMAP_SIGTERM"] == "SIGQUIT"
        grace = float(env["VERBATIM_WORKER_SHUTDOWN_GRACE_SECONDS"])
        assert spec["terminationGracePeriodSeconds"] >= grace + 30
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_scaled_object_sums_every_list_and_held_jobs(
    production_manifests: list[dict[str, Any]],
) -> None:
    scaled = of_kind(production_manifests, "ScaledObject")
    assert scaled["rel-verbatim-worker-a100"]["spec"]["minReplicaCount"] == 1
    assert scaled["rel-verbatim-worker-t4"]["spec"]["minReplicaCount"] == 0  # scale to zero
    for item in scaled.values():
        triggers = item["spec"]["triggers"]
        modifiers = item["spec"]["advanced"]["scalingModifiers"]
        # KEDA compiles the formula with expr-lang over the trigger names: identifiers.
        assert modifiers["formula"].split(" + ") == [t["name"] for t in triggers]
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t["name"]) for t in triggers)
        assert (modifiers["target"], modifiers["metricType"]) == ("1", "AverageValue")
        assert {t["type"] for t in triggers} == {"redis-sentinel"}
        assert all(t["authenticationRef"]["name"] == "rel-verbatim-redis" for t in triggers)
        keys = [t["metadata"]["listName"] for t in triggers]
        # The queues the worker itself consumes, serving the whole default catalogue.
        queues = [queue.name for queue in model_queues(Settings())]
        lists = [name if step == 0 else f"{name}{Channel.sep}{step}"
                 for name in queues for step in PRIORITY_STEPS]
        assert keys == [*lists, RECEIVED_KEY, JobStore.index_key(JobStatus.processing)]


def test_a_group_with_models_counts_and_consumes_its_own_queues(helm: Path, tmp_path: Path
                                                                ) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"workers": {"groups": [
        {"name": "big", "models": ["large-v3", "distil"]},
        {"name": "cpu", "gpus": 0, "tolerations": [], "autoscaling": {"countHeld": False},
         "models": ["base"]},
        {"name": "own", "queues": ["verbatim.mine"]},
    ]}}))
    manifests = render(helm, path)
    crds = crd_validators()
    assert [p for m in manifests for p in problems(m, crds)] == []
    big = of_kind(manifests, "Deployment")["rel-verbatim-worker-big"]
    (container,) = big["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    # The queues a worker serving those models consumes by itself, `verbatim` not among them.
    served = Settings(worker_models=["large-v3", "distil"],
                      models={name: {"source": "download", "location": name}
                              for name in ("large-v3", "distil")})
    assert command[command.index("--queues") + 1] == ",".join(
        queue.name for queue in model_queues(served))
    assert command[command.index("--queues") + 1] == "verbatim.model.large-v3,verbatim.model.distil"
    assert container_env(big)["VERBATIM_WORKER_MODELS"] == "large-v3,distil"
    triggers = of_kind(manifests, "ScaledObject")["rel-verbatim-worker-big"]["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in triggers][:2] == [
        "verbatim.model.large-v3", f"verbatim.model.large-v3{Channel.sep}1"]
    assert triggers[1]["name"] == "q_verbatim_model_large_v3_p1"
    assert len(triggers) == 2 * len(PRIORITY_STEPS) + 2
    own = of_kind(manifests, "Deployment")["rel-verbatim-worker-own"]["spec"]["template"]["spec"]
    own_command = own["containers"][0]["command"]
    assert own_command[own_command.index("--queues") + 1] == "verbatim.mine"
    cpu = of_kind(manifests, "Deployment")["rel-verbatim-worker-cpu"]["spec"]["template"]["spec"]
    assert "tolerations" not in cpu
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"].get("limits", {})
    cpu_scaled = of_kind(manifests, "ScaledObject")["rel-verbatim-worker-cpu"]["spec"]
    # base is the default model: its queue and `verbatim`; no held keys.
    assert len(cpu_scaled["triggers"]) == 2 * len(PRIORITY_STEPS)


def test_live_workers_serve_the_models_they_are_given(
    helm: Path, tmp_path: Path, default_manifests: list[dict[str, Any]]
) -> None:
    """`live.models` is the live pods' VERBATIM_WORKER_MODELS (unset: the whole catalogue); the
    pods are still started on `live`, which the worker turns into its models' live queues."""
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"live": {"models": ["tiny.en", "base"]}}))
    live = of_kind(render(helm, path), "Deployment")["rel-verbatim-live-worker"]
    assert container_env(live)["VERBATIM_WORKER_MODELS"] == "tiny.en,base"
    (container,) = live["spec"]["template"]["spec"]["containers"]
    assert container["command"][container["command"].index("--queues") + 1] == "live"
    served = Settings(worker_models=container_env(live)["VERBATIM_WORKER_MODELS"])
    assert served.served_models == ["tiny.en", "base"]
    default = of_kind(default_manifests, "Deployment")["rel-verbatim-live-worker"]
    assert "VERBATIM_WORKER_MODELS" not in container_env(default)


@pytest.mark.parametrize(("values", "message"), [
    ({"workers": {"groups": [{"name": "GPU_1"}]}}, "is not a DNS label"),
    ({"storage": {"type": "nfs"}}, "storage.type must be local or s3"),
    ({"storage": {"type": "s3", "s3": {"bucket": "b"}}}, "storage.s3.accessKeyId is required"),
    ({"secrets": {"webhookSecret": "hunter2"}}, "must be a whsec_ secret"),
    ({"redis": {"bundled": False}}, "redis.external.url is required"),
    ({"workers": {"groups": [{"name": "g", "autoscaling": {"jobsPerWorker": 0}}]}},
     "jobsPerWorker must be 1 or more"),
    ({"workers": {"groups": [{"name": "g", "autoscaling": {"minReplicas": 5}}]}},
     "need 1 <= minReplicas <= maxReplicas"),
    ({"workers": {"groups": [{"name": "g", "autoscaling": {"minReplicas": 0}}]}},
     "need 1 <= minReplicas <= maxReplicas (scaleToZero for none)"),
    ({"workers": {"shutdownMarginSeconds": 0}}, "workers.shutdownMarginSeconds 10 or more"),
    ({"redis": {"bundled": False, "external": {"url": "redis://r:6379/0"}}},
     "redis.external.address (host:port, for KEDA) is required"),
])
def test_bad_values_are_refused(
    helm: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    assert message in render_error(helm, path)


@pytest.fixture(scope="module")
def queue_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    with LocalRedis(tmp_path_factory.mktemp("redis")) as server:
        client = redis.Redis.from_url(server.url)
        yield client
        client.close()


def test_trigger_keys_are_the_lists_a_real_worker_consumes(
    default_manifests: list[dict[str, Any]], queue_redis: redis.Redis, tmp_path: Path
) -> None:
    """Jobs enqueued at several priorities land in exactly the lists the ScaledObject counts,
    KEDA's count of them is the number enqueued, and a worker started with the chart's own
    `--queues` drains every one of them."""
    (scaled,) = of_kind(default_manifests, "ScaledObject").values()
    keys = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]
    count = queue_redis.register_script(KEDA_LENGTH)
    url = queue_redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/0"
    app = make_celery(Settings(redis_url=redis_url))
    jobs = [("base", 0), ("base", 1), ("tiny.en", 1), ("base", 4), ("tiny.en", 9), ("base", 9),
            ("base", 9)]
    for number, (model, priority) in enumerate(jobs):
        enqueue_transcription(app, f"{number:032x}", model, priority=priority)
    priorities = [priority for _, priority in jobs]
    lists = {key.decode() for key in queue_redis.scan_iter(_type="list")}
    assert lists == {f"verbatim.model.{model}" + (f"{Channel.sep}{priority}" if priority else "")
                     for model, priority in jobs}
    assert lists <= set(keys)
    assert sum(count(keys=[key]) for key in keys) == len(priorities)

    worker_deployment = of_kind(default_manifests, "Deployment")["rel-verbatim-worker-gpu"]
    (container,) = worker_deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    queues = command[command.index("--queues") + 1]
    worker = start_chart_worker(queues, redis_url, tmp_path)
    try:
        # Each message the worker takes from a list is a job it reads and drops (no record).
        wait_until(lambda: worker.output().count("job skipped: deleted") == len(priorities),
                   "the worker takes every message", worker)
        assert sum(count(keys=[key]) for key in keys) == 0
        assert not list(queue_redis.scan_iter(_type="list"))
    finally:
        worker.stop()


def start_chart_worker(queues: str, redis_url: str, tmp_path: Path) -> Process:
    """A Celery worker on the chart's `--queues` (its jobs have no record, so no model is
    needed: each message is read and dropped as a deleted job's)."""
    args = [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
            "--pool", "prefork", "--concurrency", "1", "--queues", queues,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    env = {"VERBATIM_REDIS_URL": redis_url, "VERBATIM_DATA_DIR": str(tmp_path),
           "VERBATIM_WORKER_METRICS_PORT": str(free_port()), "VERBATIM_LOG_FORMAT": "text"}
    return spawn(args, {**os.environ, **env}, tmp_path / "worker.log")


def test_held_keys_count_what_workers_hold(queue_redis: redis.Redis, tmp_path: Path) -> None:
    """The held keys the ScaledObject adds, written by the store's own scripts, count one each
    for KEDA: a job received by a worker and a job processing."""
    count = queue_redis.register_script(KEDA_LENGTH)
    url = queue_redis.connection_pool.connection_kwargs
    store = JobStore.from_url(f"redis://{url['host']}:{url['port']}/0")
    received, running = "a" * 32, "b" * 32
    for job_id in (received, running):
        store.create(job_id, "x.flac", JobOptions(), 1.0, tmp_path / "x.flac")
    deliveries = Deliveries(store)
    assert deliveries.mark_received(received, "worker@node|1")
    assert deliveries.mark_received(running, "worker@node|1")
    assert deliveries.begin_attempt(running, 0) == 1
    store.update(running, status=JobStatus.processing)
    processing = JobStore.index_key(JobStatus.processing)
    assert (count(keys=[RECEIVED_KEY]), count(keys=[processing])) == (1, 1)
