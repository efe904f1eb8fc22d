"""The service honours its own OpenAPI document: schemathesis against the ASGI app, no server.

Schema-valid cases for every operation, schema-violating ones for every operation with a
body; derandomised, so the same cases run every time and this test fails only when the code
changes. The long randomised campaign against a real server is `uv run nox -s fuzz`.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.testing import FEEDBACK_TOKEN

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [
    ("POST", "/predict", POSITIVE),
    ("POST", "/predict", NEGATIVE),
    ("POST", "/feedback", POSITIVE),
    ("POST", "/feedback", NEGATIVE),
    ("GET", "/health", POSITIVE),
    ("GET", "/ready", POSITIVE),
    ("GET", "/model", POSITIVE),
    ("GET", "/metrics", POSITIVE),
    ("POST", "/reload", POSITIVE),
]


@pytest.fixture
def api_schema(config: ServingConfig) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(config))


def test_the_document_has_exactly_the_operations_tested_here(api_schema: schemathesis.BaseSchema) -> None:
    found = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]  # Err: a broken document
    operations = {(operation.method.upper(), operation.path) for operation in found}
    assert operations == {(method, path) for method, path, _ in CASES}


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_every_operation_honours_the_document(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode, data: st.DataObject
) -> None:
    case = data.draw(api_schema[path][method].as_strategy(generation_mode=mode))
    # Besides the default checks: schema-valid data must be accepted, schema-violating data refused. The routes
    # behind a token: /feedback's cases carry it, so they reach its handler; /reload's do not (it takes no body),
    # so schemathesis's ignored_auth check sees it refused without its token.
    headers = {"authorization": f"Bearer {FEEDBACK_TOKEN}"} if path == "/feedback" else None
    case.call_and_validate(headers=headers, additional_checks=[positive_data_acceptance, negative_data_rejection])
