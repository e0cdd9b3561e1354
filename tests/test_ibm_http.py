"""IBM's cloud SDK must not change HTTP for the whole process (it breaks S3 and MLflow clients)."""

from __future__ import annotations

import http.client
import logging

import pytest

from qdist.backends.qpu_providers import IbmCredentials, ibm_service
from qdist.errors import BackendError


def test_ibm_service_leaves_http_client_alone_under_debug_logging(caplog):
    caplog.set_level(logging.DEBUG)  # the SDK rewires http.client only when DEBUG is on
    before = (http.client.HTTPConnection.debuglevel, http.client.__dict__.get("print"))
    creds = IbmCredentials.from_env({"QISKIT_IBM_TOKEN": "not-a-real-token",
                                     "QISKIT_IBM_INSTANCE":
                                         "crn:v1:bluemix:public:quantum-computing:us-east:a/x:y::",
                                     "QISKIT_IBM_CHANNEL": "ibm_quantum_platform"})
    with pytest.raises(BackendError) as err:  # no network here: the connection fails, named
        ibm_service(creds)
    assert "not-a-real-token" not in str(err.value)
    assert (http.client.HTTPConnection.debuglevel, http.client.__dict__.get("print")) == before
