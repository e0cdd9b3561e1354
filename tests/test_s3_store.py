"""The Gram store and its lease on S3, held to the same contract as on a local disk.

Every test runs against both backends: a folder under tmp_path, and a bucket on a real
S3-protocol server (moto's standalone server on loopback, reached through s3fs and botocore
exactly as in production: endpoint and credentials from the environment only).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import numpy as np
import pytest

from qdist.errors import (
    ConfigError,
    IncompleteStoreError,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
)
from qdist.planning import make_plan
from qdist.storage import GramStore
from qdist.storage.lease import StoreLease, store_lease
from qdist.storage.location import parse_s3_url, resolve_store_location, s3_storage_options
from qdist.storage.s3_lease import S3Lease

from .s3_server import SECRET, Bucket, clean_aws_env, moto_server, new_bucket
from .test_store import _arrays


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> Bucket:
    b = new_bucket(s3_endpoint)
    clean_aws_env(monkeypatch, b)
    return b


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """A store location on each backend, and a function that writes a raw lease record."""
    if request.param == "local":
        location = str(tmp_path / "s.zarr")

        def put_lease(record: dict) -> None:
            (tmp_path / "s.zarr.lease").write_text(json.dumps(record))
    else:
        b = request.getfixturevalue("bucket")
        location = b.url("runs/demo/store.zarr")

        def put_lease(record: dict) -> None:
            b.client().put_object(Bucket=b.name, Key="runs/demo/store.zarr.lease",
                                  Body=json.dumps(record).encode())
    return location, put_lease


# ---------------------------------------------------------------- the store


def test_tiles_written_listed_and_reopened(where):
    location, _ = where
    plan = make_plan(10, 4, 4, 0)
    store = GramStore.create(location, _arrays(), 4, {"fingerprint": "abc"})
    assert store.missing(plan) == list(plan.tiles)
    first, last = plan.tiles[0], plan.tiles[-1]
    store.write_tile(first, np.full(first.shape, 0.5))
    store.write_tile(last, np.full(last.shape, 0.25))
    # a second handle (another process would do the same) sees exactly those chunks
    again = GramStore.create(location, _arrays(), 4, {"fingerprint": "abc"})
    missing = again.missing(plan)
    assert first not in missing and last not in missing and len(missing) == len(plan.tiles) - 2
    with pytest.raises(IncompleteStoreError, match="Resume with 'qdist run"):
        again.require_complete(plan)
    for tile in missing:
        again.write_tile(tile, np.full(tile.shape, 0.75))
    done = GramStore.open(location)
    done.require_complete(plan)
    k = done.read("k_train")
    r0, r1 = first.rows
    c0, c1 = first.cols
    assert (k[r0:r1, c0:c1] == 0.5).all()
    assert list(done.read("sample_ids_train"))[:2] == ["s-0", "s-1"]
    assert done.attrs["fingerprint"] == "abc" and done.location == location


def test_foreign_job_refused_and_store_untouched(where):
    location, _ = where
    plan = make_plan(10, 4, 4, 0)
    s1 = GramStore.create(location, _arrays(), 4, {"fingerprint": "abc"})
    s1.write_tile(plan.tiles[0], np.full(plan.tiles[0].shape, 0.5))
    before = s1.read("x_train")
    with pytest.raises(StoreMismatchError, match="another job"):
        GramStore.create(location, _arrays(q=4), 4, {"fingerprint": "other"})
    again = GramStore.open(location)
    np.testing.assert_array_equal(again.read("x_train"), before)
    assert plan.tiles[0] not in again.missing(plan)


def test_missing_store_is_a_clear_error(where):
    location, _ = where
    with pytest.raises(StoreError, match="No qdist store"):
        GramStore.open(location)


# ---------------------------------------------------------------- the lease


def test_lease_is_exclusive_and_released(where):
    location, _ = where
    a = store_lease(location, ttl=30)
    a.acquire()
    with pytest.raises(StoreLockedError, match=f"Another driver \\(pid .* on {socket.gethostname()}"):
        store_lease(location, ttl=30).acquire()
    a.release()
    with store_lease(location, ttl=30) as b:  # free again
        assert b.holder != a.holder


def test_stale_leases_are_taken_over_live_ones_refused(where):
    location, put_lease = where
    put_lease({"holder": "old", "host": "elsewhere", "pid": 1, "expires_at": time.time() - 1})
    with store_lease(location):
        pass
    put_lease({"holder": "old", "host": "elsewhere", "pid": 1, "expires_at": time.time() + 60})
    with pytest.raises(StoreLockedError, match="elsewhere.*live for"):
        store_lease(location).acquire()
    put_lease({"holder": "old", "host": socket.gethostname(), "pid": 2**22 + 7,  # no such pid
               "expires_at": time.time() + 3600})
    with store_lease(location):
        pass
    put_lease({"not": "a lease"})  # a torn or foreign record counts as expired
    with store_lease(location):
        pass


def test_only_one_of_racing_drivers_takes_a_stale_lease(where):
    location, put_lease = where
    put_lease({"holder": "dead", "host": "elsewhere", "pid": 1, "expires_at": 0.0})
    leases = [store_lease(location, ttl=30) for _ in range(6)]
    barrier = threading.Barrier(len(leases))
    won: list[object] = []
    lost: list[Exception] = []

    def take(lease) -> None:
        barrier.wait()
        try:
            lease.acquire()
            won.append(lease)
        except StoreLockedError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == len(leases) - 1
    won[0].release()


def test_lease_is_renewed_and_a_lost_lease_is_left_alone(where, caplog):
    location, put_lease = where
    lease = store_lease(location, ttl=0.9)
    lease.acquire()
    first = lease._read()[0]["expires_at"]
    time.sleep(0.7)
    assert lease._read()[0]["expires_at"] > first  # renewed in the background
    # another driver takes the lease (as after an expiry): the renewal notices and stops
    with caplog.at_level(logging.ERROR, logger="qdist.storage.lease"):
        put_lease({"holder": "usurper", "host": "elsewhere", "pid": 1,
                   "expires_at": time.time() + 60})
        time.sleep(0.8)
    assert "lost the store lease" in caplog.text
    lease.release()
    assert lease._read()[0]["holder"] == "usurper"  # not ours: not deleted


def test_s3_lease_survives_http_client_debugging_patched_by_another_library(bucket, monkeypatch):
    """ibm-cloud-sdk-core at DEBUG level sets http.client's debuglevel and replaces its print
    with one that fails on 100-continue headers; the lease sends no Expect header."""
    import http.client

    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    monkeypatch.setattr(http.client, "print", lambda *args: " ".join(args), raising=False)
    with store_lease(bucket.url("runs/store.zarr"), ttl=30) as lease:
        assert lease._read()[0]["holder"] == lease.holder


def test_the_backend_follows_the_location(tmp_path):
    assert isinstance(store_lease(str(tmp_path / "s.zarr")), StoreLease)
    s3 = store_lease("s3://bucket/a/store.zarr")
    assert isinstance(s3, S3Lease) and (s3.bucket, s3.key) == ("bucket", "a/store.zarr.lease")


# ---------------------------------------------------------------- S3 locations and errors


@pytest.mark.parametrize(("url", "match"), [
    ("gs://bucket/p", "must be a local folder or an s3:// URL"),
    ("s3://", "must look like s3://bucket/prefix"),
    ("s3://bucket/p?versionId=1", "must look like s3://bucket/prefix"),
    ("s3://bucket//p", "empty path segment"),
])
def test_bad_store_urls_name_the_field(url, match):
    with pytest.raises(ConfigError, match=f"'output.dir'.*{match}"):
        resolve_store_location(url)


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as info:
        resolve_store_location(f"s3://KEYID:{SECRET}@bucket/runs")
    assert "output.dir" in str(info.value) and SECRET not in str(info.value)
    assert "KEYID" not in str(info.value)


def test_store_location_of_an_s3_output_dir():
    assert resolve_store_location("s3://b/runs/demo/") == "s3://b/runs/demo/store.zarr"
    assert str(parse_s3_url("s3://b").child("store.zarr")) == "s3://b/store.zarr"


def test_storage_options_come_from_the_environment():
    opts = s3_storage_options({"AWS_ENDPOINT_URL": "http://minio:9000"})
    assert opts["endpoint_url"] == "http://minio:9000" and opts["use_listings_cache"] is False
    assert opts["config_kwargs"]["s3"]["addressing_style"] == "path"
    assert s3_storage_options({})["config_kwargs"]["s3"]["addressing_style"] == "auto"
    assert "endpoint_url" not in s3_storage_options({})
    assert s3_storage_options({"AWS_ENDPOINT_URL_S3": "http://a", "AWS_ENDPOINT_URL": "http://b",
                               "QDIST_S3_ADDRESSING_STYLE": "virtual"}) == {
        "use_listings_cache": False, "endpoint_url": "http://a",
        "config_kwargs": {"s3": {"addressing_style": "virtual"}}}
    with pytest.raises(ConfigError, match="QDIST_S3_ADDRESSING_STYLE"):
        s3_storage_options({"QDIST_S3_ADDRESSING_STYLE": "sideways"})


def test_missing_bucket_and_unreachable_endpoint_are_clear(bucket, monkeypatch):
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-q' .* does not exist"):
        store_lease("s3://no-such-bucket-q/runs/store.zarr").acquire()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreError, match="S3 is unreachable.*AWS_ENDPOINT_URL") as info:
        S3Lease(bucket.url("runs/store.zarr")).acquire()
    assert SECRET not in str(info.value)
