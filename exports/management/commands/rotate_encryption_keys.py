"""Re-encrypt every stored secret under the first key of CREDENTIALS_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from exports import crypto
from exports.models import Credential, WebhookEndpoint, XeroConnection

ENCRYPTED_COLUMNS = {
    Credential: [f"{name}_ciphertext" for name in Credential.SECRET_FIELDS],
    WebhookEndpoint: ["signing_secrets_ciphertext"],
    XeroConnection: [f"{name}_ciphertext" for name in XeroConnection.SECRET_FIELDS],
}


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of CREDENTIALS_ENCRYPTION_KEYS. "
        "Put the new key first and keep the old ones after it while this runs."
    )

    def handle(self, *args, **options):
        total = 0
        try:
            with transaction.atomic():
                for model, columns in ENCRYPTED_COLUMNS.items():
                    for row in model.objects.select_for_update().only("pk", *columns):
                        for column in columns:
                            setattr(row, column, crypto.rotate(getattr(row, column)))
                        model.objects.filter(pk=row.pk).update(
                            **{column: getattr(row, column) for column in columns}
                        )
                        total += 1
        except crypto.SecretDecryptionError as exc:
            raise CommandError(f"Nothing was changed: {exc}")
        self.stdout.write(f"Re-encrypted the secrets of {total} rows under the first key.")
