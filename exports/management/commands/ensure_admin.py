"""Create a local admin login if there is none; its password is printed once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a local superuser 'admin' with a random password when no superuser exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        try:  # the column's length and the user model's own rules, before the database sees it
            User._meta.get_field(User.USERNAME_FIELD).clean(options["username"], None)
        except ValidationError as exc:
            raise CommandError(f"--username: {' '.join(exc.messages)}", returncode=2) from None
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(options["username"], "", password)
        self.stdout.write(
            f"Created the admin login (shown once): user {options['username']}, "
            f"password {password}\n"
            f"(change it with: python manage.py changepassword {options['username']})"
        )
