"""Where a store lives: a local folder or an S3 URL, and how to open it.

``output.dir`` is either a folder (the store is ``<dir>/store.zarr``, its lease
``<dir>/store.zarr.lease``) or an S3 URL ``s3://bucket/prefix`` (the store is
``s3://bucket/prefix/store.zarr``, its lease the object ``prefix/store.zarr.lease``).

S3 settings come from the environment only, never from the job file, so they cannot reach
the store's attributes, MLflow parameters or logs:

- ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (in Kubernetes, from a Secret),
  or any other source of botocore's credential chain;
- ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for an S3-compatible server (MinIO, Ceph...);
- ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``);
- ``QDIST_S3_ADDRESSING_STYLE`` (``path``, ``virtual`` or ``auto``): default ``path`` when an
  endpoint is set (what S3-compatible servers expect), ``auto`` on AWS.

A URL that carries credentials (``s3://KEY:SECRET@bucket``) is refused without echoing them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from qdist.errors import ConfigError, StoreError

__all__ = ["S3Url", "check_output", "is_remote", "parse_s3_url", "resolve_store_location",
           "s3_addressing_style", "s3_endpoint", "s3_storage_options", "zarr_store"]

_STYLES = ("path", "virtual", "auto")


class S3Url:
    """A checked ``s3://bucket/key`` URL (no credentials, no query)."""

    __slots__ = ("bucket", "key")

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def child(self, name: str) -> S3Url:
        return S3Url(self.bucket, f"{self.key}/{name}" if self.key else name)


def is_remote(location: str) -> bool:
    """True for an object-store URL (``scheme://...``), False for a local path."""
    return "://" in str(location)


def parse_s3_url(url: str, field: str = "output.dir") -> S3Url:
    """Check ``url`` and split it into bucket and key; errors name ``field``."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ConfigError(
            f"The job-file field '{field}' must be a local folder or an s3:// URL; got "
            f"{_shown(url)!r}. Use e.g. s3://my-bucket/qdist/runs/demo (other object stores: "
            "through their S3-compatible endpoint, AWS_ENDPOINT_URL)."
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"The job-file field '{field}' holds credentials in its URL (value not shown). Remove "
            "them: qdist reads S3 credentials only from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (in Kubernetes, from a Secret)."
        )
    if not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"The job-file field '{field}' must look like s3://bucket/prefix; got {url!r}. Name a "
            "bucket, and leave out '?' and '#' parts."
        )
    key = parts.path.removeprefix("/").rstrip("/")
    if "//" in key or key.startswith("/"):
        raise ConfigError(f"The job-file field '{field}' has an empty path segment: {url!r}. "
                          "Remove the doubled '/'.")
    return S3Url(parts.netloc, key)


def _shown(url: str) -> str:
    """``url`` safe to print: any userinfo (credentials) replaced."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
    return url


def check_output(output_dir: str, tracking_uri: str | None) -> None:
    """Before any work: an object-store ``output.dir`` must be a valid S3 URL and needs an MLflow
    server (the default SQLite tracking file lives in a local output folder)."""
    if not is_remote(output_dir):
        return
    parse_s3_url(output_dir)
    if not tracking_uri:
        raise ConfigError(
            f"The job-file field 'tracking.uri' must name an MLflow server when output.dir is an "
            f"object-store URL ({output_dir!r}); got None. Set it (or --tracking-uri), e.g. "
            "http://mlflow:5000: the default SQLite file needs a local output folder.")


def resolve_store_location(output_dir: str) -> str:
    """The store location for ``output.dir``: an absolute path (its folder created) or a URL."""
    if is_remote(output_dir):
        return str(parse_s3_url(output_dir).child("store.zarr"))
    from pathlib import Path

    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"The output folder {str(out)!r} cannot be created: {exc}. Pass "
                         "--out (or output.dir) with a writable folder.") from exc
    return str((out / "store.zarr").resolve())


def s3_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; None for AWS."""
    env = os.environ if environ is None else environ
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def s3_addressing_style(environ: Mapping[str, str] | None = None) -> str:
    """``QDIST_S3_ADDRESSING_STYLE``, else ``path`` with a custom endpoint, else ``auto``."""
    env = os.environ if environ is None else environ
    style = env.get("QDIST_S3_ADDRESSING_STYLE", "").strip().lower()
    if style and style not in _STYLES:
        raise ConfigError(
            f"The environment variable QDIST_S3_ADDRESSING_STYLE must be one of {list(_STYLES)}; "
            f"got {style!r}. Unset it, or use path for S3-compatible servers."
        )
    return style or ("path" if s3_endpoint(env) else "auto")


def s3_storage_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """s3fs options: endpoint and addressing from the environment, no listing cache.

    Listings are never cached: the driver lists the chunks that workers in other processes
    have written, and a cached listing would call finished tiles missing. Credentials are
    not copied here; botocore reads them from the environment itself.
    """
    options: dict[str, Any] = {"use_listings_cache": False,
                               "config_kwargs": {"s3": {"addressing_style":
                                                        s3_addressing_style(environ)}}}
    endpoint = s3_endpoint(environ)
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def zarr_store(location: str, mode: str) -> Any:
    """What :func:`zarr.open_group` takes for ``location``: the path itself, or an S3 store."""
    if not is_remote(location):
        return location
    from zarr.storage import FsspecStore

    url = parse_s3_url(location, "store location")
    try:
        return FsspecStore.from_url(str(url), storage_options=s3_storage_options(),
                                    read_only=mode == "r")
    except ImportError as exc:
        raise StoreError(
            f"The store {location!r} is on S3, which needs the s3fs package. Install it with "
            "pip install 'qdist[s3]' (the qdist container images have it)."
        ) from exc
