"""A real S3-protocol server on loopback for the object-storage tests: moto's standalone server
(``python -m moto.server``), started as a process, with a fresh bucket per test."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECRET = "s3-secret-that-must-never-leak-7f3a"
KEY_ID = "QDISTTESTKEYID"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; yield its endpoint URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL,
                            stderr=open(log_dir / "moto.log", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except urllib.error.HTTPError:  # it answers: up
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start: "
                                       + (log_dir / "moto.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@dataclass
class Bucket:
    """A bucket on the test server, with the environment a process needs to reach it."""

    endpoint: str
    name: str
    env: dict[str, str]

    def client(self) -> Any:
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name,
                                                                         Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"


def new_bucket(endpoint: str) -> Bucket:
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    bucket = Bucket(endpoint, f"qdist-{uuid.uuid4().hex[:10]}", env)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket


def clean_aws_env(monkeypatch: Any, bucket: Bucket) -> None:
    """Point this process at ``bucket``'s server and nothing else (no profile, no token).

    Also undo what another test may have left behind in this process: ibm-cloud-sdk-core, built
    at DEBUG level, turns on ``http.client`` debugging for good, with a ``print`` that fails on
    the headers of the 100-continue responses botocore's uploads receive.
    """
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 0)
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "QDIST_S3_ADDRESSING_STYLE":
            monkeypatch.delenv(name)
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
