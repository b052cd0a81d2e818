"""The tests' name for the OpenAPI schema helpers, which live in product code:
:mod:`exports.pleo.openapi` (``manage.py verify_pleo_contract`` uses them on real Pleo answers).

    from tests.openapi_schemas import validate, validate_request_body, validate_response
"""

from exports.pleo.openapi import (  # noqa: F401 - re-exported for the tests
    BOGUS_PATTERNS,
    FORMAT_CHECKER,
    NULLABLE_IN_PRACTICE,
    PLEO_TIMESTAMP_RE,
    SPEC_FILES,
    enum_values,
    errors,
    load_spec,
    response_errors,
    schema,
    schema_names,
    spec_dir,
    validate,
    validate_request_body,
    validate_response,
    validator,
)
