"""Native tests for the Python crash-tracker, ported from the Rust policy's
tests, plus the shared case table (`../cases.toml`) that the component must pass too."""

from pathlib import Path

import pytest
from airlock_policy.testing import Harness, load_cases, request
from policy import MAX_RESPONSE_BYTES, SERVICE, WitWorld

CASES = Path(__file__).resolve().parent.parent / "cases.toml"


def test_describes_itself():
    description = WitWorld().describe()
    assert (description.name, description.version) == ("crash-tracker", "0.1.0")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reads_crash_reports(method):
    grant = Harness(WitWorld).expect_allow(request(SERVICE, method, "/crashes/123", operation="crashes.read"))
    assert grant.scopes == ["crash-reporting:read"]
    assert grant.max_response_bytes == MAX_RESPONSE_BYTES == 51200
    assert (grant.ttl_seconds, grant.single_use, grant.claims) == (300, False, [])


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_never_writes(method):
    reason = Harness(WitWorld).expect_deny(request(SERVICE, method, "/crashes/123"))
    assert reason == f"crash-tracker is read-only: {method} is not allowed"


def test_no_other_service():
    reason = Harness(WitWorld).expect_deny(request("analytics", "GET", "/metrics"))
    assert reason == "crash-tracker may only use the crash-reporting service, not analytics"


@pytest.mark.parametrize("case", load_cases(CASES), ids=lambda case: case.name)
def test_shared_case_table(case):
    result = case.run(WitWorld)
    assert result.passed, result.problem
