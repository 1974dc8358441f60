"""Property-based API testing with schemathesis: requests generated from the
server's own OpenAPI schema, valid and invalid, must never get a 5xx, must
get only documented status codes and bodies that match the schema, and
invalid ones must be refused with a 4xx. The model is the deterministic fake
of test_serve.py, so this runs in seconds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from test_serve import FakeBackend  # noqa: E402

from collm.serve import ServeConfig, create_app  # noqa: E402

app = create_app(FakeBackend(), ServeConfig(model_name="fake", default_n=2, max_n=8, max_tokens_limit=64))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_5xx_and_matches_its_schema(case):
    case.call_and_validate(checks=CHECKS)
