"""The store lease as an S3 object, kept exclusive with conditional writes.

The lease of ``s3://bucket/prefix/store.zarr`` is the object ``prefix/store.zarr.lease`` (the
same JSON record as the file lease). Its version token is the object's ETag:

- create: ``PutObject`` with ``If-None-Match: *`` (fails with 412 when a lease exists);
- replace (take-over of a stale lease, renewal): ``PutObject`` with ``If-Match: <ETag>``, so of
  two drivers racing for a dead lease exactly one wins, and a renewal after a take-over fails;
- release: ``DeleteObject`` with ``If-Match`` (servers without conditional deletes: a plain
  delete after checking the holder).

AWS S3 has honoured these headers since 2024, and so do current S3-compatible servers. A server
that ignores them silently would let two drivers that start within the same instant both
proceed: creation checks for an existing lease first and every write is read back, which
catches every other case. Expiry compares the record's wall-clock time with this host's
clock: keep the nodes' clocks in sync (NTP), as Kubernetes nodes are.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from qdist.errors import StoreError
from qdist.storage.lease import _TORN, Lease
from qdist.storage.location import (
    parse_s3_url,
    s3_addressing_style,
    s3_endpoint,
)

__all__ = ["S3Lease"]

log = logging.getLogger(__name__)

_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _no_expect_continue(request: Any, **_: Any) -> None:
    """Send lease records (a hundred bytes) without ``Expect: 100-continue``.

    Nothing is gained by waiting for a 100 response before so small a body, and skipping it
    keeps the lease working where another library has patched ``http.client``'s debug printing
    (ibm-cloud-sdk-core does at DEBUG level, and then fails on the 100 response's headers).
    """
    if "Expect" in request.headers:
        del request.headers["Expect"]


class S3Lease(Lease):
    """The lease of the S3 store at ``store_location`` (``s3://bucket/prefix/store.zarr``)."""

    def __init__(self, store_location: str, ttl: float = 60.0) -> None:
        url = parse_s3_url(f"{store_location}.lease", "store location")
        self.bucket, self.key = url.bucket, url.key
        super().__init__(str(url), ttl)
        self._client_obj: Any = None

    # ------------------------------------------------------------ client and errors
    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            import botocore.session
            from botocore.config import Config

            client = botocore.session.get_session().create_client(
                "s3", endpoint_url=s3_endpoint(),
                config=Config(s3={"addressing_style": s3_addressing_style()},
                              retries={"mode": "standard"}))  # attempts: AWS_MAX_ATTEMPTS, 3
            client.meta.events.register("before-send.s3", _no_expect_continue)
            self._client_obj = client
        return self._client_obj

    def _call(self, op: str, **kwargs: Any) -> Any:
        """One S3 call; conditional failures come back as the error code, others raise."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return getattr(self._client, op)(Bucket=self.bucket, Key=self.key, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _CONFLICT or code in _MISSING:
                return code
            raise self._error(code) from exc
        except NoCredentialsError as exc:
            raise StoreError(
                f"No S3 credentials for the store lease {self.where!r}. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (in Kubernetes, from a Secret; see the chart's "
                "storage.s3.credentialsSecret)."
            ) from exc
        except BotoCoreError as exc:  # endpoint unreachable, bad endpoint URL, ...
            raise StoreError(
                f"S3 is unreachable for {self.where!r} ({type(exc).__name__}, endpoint "
                f"{s3_endpoint() or 'AWS'}). Check AWS_ENDPOINT_URL and the network."
            ) from exc

    def _error(self, code: str) -> StoreError:
        if code == "NoSuchBucket":
            return StoreError(
                f"The bucket {self.bucket!r} (of the store {self.where[:-len('.lease')]!r}) does "
                f"not exist at {s3_endpoint() or 'AWS'}. Create it, or fix output.dir / --out."
            )
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            return StoreError(
                f"S3 refused access to {self.where!r} ({code}). Check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, and that they may read, write and delete in the bucket."
            )
        return StoreError(f"S3 error {code} on {self.where!r}. Check the bucket and endpoint.")

    # ------------------------------------------------------------ primitives
    def _create(self, record: dict[str, Any]) -> Any:
        head = self._call("head_object")
        if not isinstance(head, str):  # a lease exists: leave it to the take-over rules
            return None
        put = self._call("put_object", Body=json.dumps(record).encode(), IfNoneMatch="*",
                         ContentType="application/json")
        if isinstance(put, str):
            return None
        return self._confirmed(record, put["ETag"])

    def _read(self) -> tuple[dict[str, Any] | None, Any]:
        got = self._call("get_object")
        if isinstance(got, str):
            return None, None
        body = got["Body"].read()
        try:
            data: dict[str, Any] = json.loads(body)
        except ValueError:  # a torn or foreign record counts as stale
            return dict(_TORN), got["ETag"]
        return data, got["ETag"]

    def _replace(self, record: dict[str, Any], token: Any) -> Any:
        if token is None:
            return None
        put = self._call("put_object", Body=json.dumps(record).encode(), IfMatch=token,
                         ContentType="application/json")
        if isinstance(put, str):
            return None
        return self._confirmed(record, put["ETag"])

    def _confirmed(self, record: dict[str, Any], etag: str) -> Any:
        """Read the lease back: ours at ``etag``, else None (a server ignored a condition)."""
        current, found = self._read()
        if current is None or current.get("holder") != record["holder"]:
            return None
        return found if found is not None else etag

    def _delete(self, token: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _CONFLICT or code in _MISSING:
                return  # taken over or gone meanwhile: not ours to delete
            if code in {"NotImplemented", "InvalidArgument"}:  # no conditional deletes here
                self._call("delete_object")
                return
            raise self._error(code) from exc
