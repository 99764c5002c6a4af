"""schemathesis against intake's own OpenAPI document, every operation in it.

intake runs as a real nameko container (private RabbitMQ vhost, its own PostgreSQL database); the
document is fetched from its `/api/openapi.json` and every operation gets generated requests,
valid ones and invalid ones (schemathesis' positive and negative modes). Every answer must be no
5xx and conform to the document: a documented status code, the documented content type, a body
matching the documented schema, the documented headers.

schemathesis' lazy pytest loader (`schemathesis.pytest.from_fixture`) does not run under pytest 9
(it reads a node attribute pytest removed), so this uses its Python API: one pytest item per
operation, one Hypothesis run per generation mode.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.intake_channels import intake_config
from support.net import free_port

from services.intake.openapi import build_spec
from services.intake.service import IntakeService

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Examples per operation and generation mode; bounded so the file stays under 3 minutes.
MAX_EXAMPLES = 30

# The operations as the code documents them; the served document must hold exactly these.
OPERATIONS = sorted(
    (method.upper(), path)
    for path, operations in build_spec("http://dumas.test")["paths"].items()
    for method in operations
)


@pytest.fixture
def intake(start_service):
    address = f"127.0.0.1:{free_port()}"
    service = start_service(
        IntakeService,
        **intake_config(),
        WEB_SERVER_ADDRESS=address,
        # the document's server URL is the public base URL: here, this very container
        PUBLIC_BASE_URL=f"http://{address}",
        # generous limits: the run is about the answers (429 is documented, but would hide
        # the rest of the code behind it)
        RATE_LIMIT_IP="100000/100000",
        RATE_LIMIT_LOOKUP="100000/100000",
        TRACKING_MISSES_PER_IP="100000/60",
    )
    service.http.headers["Connection"] = "close"
    return service


def test_the_served_document_lists_every_intake_operation(intake):
    document = intake.get("/api/openapi.json").json()

    served = sorted((m.upper(), p) for p, ops in document["paths"].items() for m in ops)
    assert served == OPERATIONS
    # the JSON API, Open311, the WhatsApp webhook, health and metrics
    assert {p for _m, p in OPERATIONS} >= {
        "/api/v1/complaints", "/api/v1/complaints/{code}", "/api/v1/categories",
        "/open311/v2/requests.json", "/open311/v2/requests/{request_id}.json",
        "/open311/v2/services.json", "/webhooks/whatsapp", "/health", "/metrics"}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_intake_operation_answers_as_documented(intake, method, path):
    schema = schemathesis.openapi.from_url(intake.url("/api/openapi.json"), timeout=10)
    operation = schema[path][method]
    answered = []

    modes = [GenerationMode.POSITIVE]
    if _has_inputs(operation):  # nothing to make invalid otherwise
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples on every run: a failure reproduces
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            # no idle keep-alive connections: they slow the container's stop
            response = case.call_and_validate(checks=CHECKS, headers={"Connection": "close"},
                                              timeout=10)
            answered.append(response.status_code)

        run()

    assert answered, "no request was generated"


def _has_inputs(operation) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))
