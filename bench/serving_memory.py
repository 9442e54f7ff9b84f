"""The served model's peak memory under images that decode to gigabytes (issue #28, case 5).

Logs a tiny model with train's ``log_model`` to a throwaway store, then for each scenario
starts a fresh ``mlflow models serve`` on it, sends the scenario's requests (concurrent
ones at once, from threads), and reads the server's peak RSS (VmHWM of its biggest
process, the uvicorn worker) against its RSS when it was ready. Each scenario runs with the
bounds lifted (IMGPIPE_SERVE_MAX_*_MB set to a terabyte: the decoding as it was before
the bounds) and with the default bounds.

    .venv/bin/python bench/serving_memory.py
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgpipe.models.saved import save_model

BIN = Path(sys.executable).parent
LIFTED = {
    name: str(2**20)
    for name in ("IMGPIPE_SERVE_MAX_IMAGE_MB", "IMGPIPE_SERVE_MAX_REQUEST_MB", "IMGPIPE_SERVE_MAX_DECODING_MB")
}


def scan16(side: int) -> str:
    """A 16-bit greyscale PNG, base64: a few hundred KB that decode to gigabytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("I;16", (side, side), np.zeros((side, side), np.uint16).tobytes()).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def log_tiny_model(root: Path) -> str:
    import mlflow
    import torch

    from imgpipe.models.factory import create_model
    from imgpipe.models.spec import ModelSpec
    from imgpipe.serving.logged_model import log_model

    spec = ModelSpec(
        name="simple_cnn",
        options={"filters": 4, "kernel_size": 3, "dense_units": 8},
        classes=["a", "b", "c"],
        image_size=16,
        channels=1,
    )
    torch.manual_seed(0)
    save_model(root / "models", create_model(spec), spec, {"run_id": "none"})
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    with mlflow.start_run():
        info = log_model(root / "models", np.zeros((1, 16, 16, 1), np.uint8), spec.to_dict())
    return mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / "served"))


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(model: str, env: dict, requests: list[dict], port: int) -> tuple[int, int, list[str]]:
    """(ready MB, peak MB, each row's error) of a fresh server that answers ``requests`` at once."""
    import psutil

    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            model,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        worker = max(psutil.Process(server.pid).children(recursive=True), key=lambda p: p.memory_info().rss)
        ready = worker.memory_info().rss // 2**20

        def post(body: dict) -> list[str]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            answer = json.loads(urllib.request.urlopen(request, timeout=600).read())
            return [row["error"][:60] for row in answer["predictions"]]

        with ThreadPoolExecutor(len(requests)) as pool:
            errors = [e for rows in pool.map(post, requests) for e in rows]
        return ready, status_kb(worker.pid, "VmHWM") // 1024, errors
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    from imgpipe.sandbox import free_port

    bomb, scan = scan16(9400), scan16(4000)
    scenarios = {
        "one 9400x9400 16-bit PNG (167 KB)": [{"inputs": [{"image": bomb}]}],
        "two of them at once": [{"inputs": [{"image": bomb}]}] * 2,
        "four 4000x4000 16-bit PNGs at once": [{"inputs": [{"image": scan}]}] * 4,
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = log_tiny_model(Path(tmp))
        base = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        print("| requests | bounds | server RSS ready | peak | rows refused |\n|---|---|---|---|---|")
        for name, requests in scenarios.items():
            for label, extra in (("lifted (as before)", LIFTED), ("defaults", {})):
                env = {k: v for k, v in base.items() if not k.startswith("IMGPIPE_SERVE_")} | extra
                ready, peak, errors = measure(model, env, requests, free_port())
                print(
                    f"| {name} | {label} | {ready} MB | {peak} MB | {sum(bool(e) for e in errors)} of {len(errors)} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
