"""Imports go one way between the credential services: ``credentials`` (clients from stored
credentials) → ``oauth`` (bearer tokens) → ``credential_errors`` (``CredentialUnusable`` and its
message), a leaf. Read from the source at any depth (function-level imports too)."""

from __future__ import annotations

from tests.test_layering import ROOT, imports_of

SERVICES = ROOT / "exports" / "services"


def services_imported_by(name: str) -> set[str]:
    prefix = "exports.services."
    return {
        imported.removeprefix(prefix).split(".")[0]
        for _, imported in imports_of(SERVICES / f"{name}.py")
        if imported.startswith(prefix)
    }


def test_oauth_does_not_import_the_credentials_module_back():
    assert "oauth" in services_imported_by("credentials")
    assert "credentials" not in services_imported_by("oauth")


def test_credential_unusable_comes_from_a_leaf():
    from exports.services import credential_errors, credentials, oauth

    assert services_imported_by("credential_errors") == set()
    assert credentials.CredentialUnusable is credential_errors.CredentialUnusable
    assert oauth.CredentialUnusable is credential_errors.CredentialUnusable
