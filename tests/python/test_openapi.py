"""The management API's OpenAPI document is a valid OpenAPI 3.1 document (`tollgate --print-openapi`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from openapi_spec_validator import validate

REPO_ROOT = Path(__file__).resolve().parents[2]


def tollgate_binary() -> Path:
    path = Path(os.environ.get("TOLLGATE_BIN", REPO_ROOT / "target" / "debug" / "tollgate"))
    if not path.exists():
        pytest.exit(f"tollgate binary not found at {path}; build it or set TOLLGATE_BIN", returncode=2)
    return path


def document() -> dict:
    out = subprocess.run([str(tollgate_binary()), "--print-openapi"], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def test_the_document_validates_as_openapi_3_1():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_operation_documents_its_errors_and_the_key_flow_is_there():
    doc = document()
    operations = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(operations) >= 30
    for path, method, op in operations:
        assert "401" in op["responses"] and "404" in op["responses"], f"{method} {path}"
    assert "post" in doc["paths"]["/api/v1/subscriptions/{id}/keys"]
    assert doc["components"]["schemas"]["KeyCreated"]["required"] == ["key", "secret"]
