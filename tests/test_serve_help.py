"""``serve --help`` says what --host, --port and --sandbox-port are for."""

from __future__ import annotations

import re

from exports.management.commands.serve import Command


def _help() -> str:
    return " ".join(Command().create_parser("manage.py", "serve").format_help().split())


def test_serve_help_documents_host_port_and_sandbox_port():
    text = _help()
    for option, words in (
        ("--host HOST", "Address the web server listens on"),
        ("--port PORT", "Port of the web server and the admin"),
        ("--sandbox-port SANDBOX_PORT", "Port of the local Pleo sandbox"),
    ):
        found = re.search(re.escape(option) + r" (.*?)(?= --|$)", text)
        assert found, option
        assert words in found[1], (option, found[1])
        assert "default:" in found[1], option
