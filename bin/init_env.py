"""Create the local, git-ignored .env once (mode 0600) with generated keys.

Every later process (web server, worker, commands) reads it, so they share the same keys and a
restart never makes stored secrets unreadable. Existing values are never changed; missing ones
are added. The process environment still wins over .env.
"""

import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def read_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            keys.add(line.split("=", 1)[0].strip())
    return keys


def main() -> int:
    present = read_keys(ENV_FILE)
    wanted = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "CREDENTIALS_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
        "DEBUG": lambda: "1",
        # No Pleo credentials configured: run against the local sandbox.
        "PLEO_SANDBOX": lambda: "0" if os.environ.get("PLEO_API_BASE_URL") else "1",
    }
    missing = {name: make() for name, make in wanted.items() if name not in present}
    if not missing:
        return 0
    created = not ENV_FILE.exists()
    fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if created:
            handle.write(
                "# Local settings for pleo-export-bridge (git-ignored). See .env.example.\n"
            )
        for name, value in missing.items():
            handle.write(f"{name}={value}\n")
    os.chmod(ENV_FILE, 0o600)
    print(
        f"{'Created' if created else 'Completed'} .env with {', '.join(missing)}.", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
