"""Where the worker's main process keeps its pool processes' metric files: a private
temporary directory, not the shared data volume, removed at shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from support import ROOT

from shared.localredis import free_port
from worker import metrics

# The main process's start and stop (`worker_init`, `worker_shutdown`), with the directory
# it served from and what was left of it.
SERVE = """
import json, os, sys
from pathlib import Path
from shared.config import Settings
from worker import metrics
metrics.start_server(Settings(data_dir=sys.argv[1], worker_metrics_port=int(sys.argv[2])))
path = Path(os.environ[metrics.ENV])
empty = path.is_dir() and not any(path.iterdir())
metrics.stop_server()
print(json.dumps({"path": str(path), "empty": empty, "kept": path.exists()}))
"""


def serve(data: Path, env: dict[str, str]) -> dict:
    args = [sys.executable, "-c", SERVE, str(data), str(free_port())]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_private_temporary_directory_removed_at_shutdown(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != metrics.ENV}
    first, second = (serve(tmp_path / "data", env) for _ in range(2))
    for served in (first, second):
        path = Path(served["path"])
        assert path.parent == Path(tempfile.gettempdir())
        assert path.name.startswith("verbatim-worker-metrics-")
        assert served["empty"]
        assert not served["kept"]
    assert first["path"] != second["path"]
    assert not (tmp_path / "data" / "metrics").exists()


def test_a_directory_given_in_the_environment_is_used_and_kept(tmp_path: Path) -> None:
    given = tmp_path / "prometheus"
    given.mkdir()
    served = serve(tmp_path / "data", os.environ | {metrics.ENV: str(given)})
    assert served == {"path": str(given), "empty": True, "kept": True}
