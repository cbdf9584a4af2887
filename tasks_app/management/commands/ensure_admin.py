import contextlib
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from tasks_app.services.admins import first_admin_ensure


def password_command(username: str) -> str:
    """The command that sets a new password for the account, as typed where manage.py is."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    default = (settings.BASE_DIR / "var").resolve() == settings.DATA_DIR
    data_dir = "" if default else f"ECRPORTAL_DATA_DIR={settings.DATA_DIR} "
    return f"{data_dir}{python} manage.py changepassword {username}"


class Command(BaseCommand):
    help = (
        "Create the first admin account unless a superuser exists. Uses "
        "ECRPORTAL_ADMIN_USERNAME / ECRPORTAL_ADMIN_PASSWORD / ECRPORTAL_ADMIN_EMAIL; "
        "without a password, prints a one-time password that must be changed at first sign-in."
    )

    def handle(self, *args, **options):
        try:
            admin = first_admin_ensure(
                username=settings.ADMIN_USERNAME,
                email=settings.ADMIN_EMAIL,
                password=settings.ADMIN_PASSWORD,
            )
        except ValidationError as e:
            raise CommandError(
                "ECRPORTAL_ADMIN_PASSWORD is not accepted: " + " ".join(e.messages)
            ) from None
        except IntegrityError:
            raise CommandError(
                f"An account named {settings.ADMIN_USERNAME!r} exists but is not a superuser. "
                "Set ECRPORTAL_ADMIN_USERNAME to another name, or grant that account "
                "superuser rights with manage.py shell."
            ) from None

        url = f"{settings.SITE_URL}/"
        out = self.stdout
        out.write("")
        out.write(self.style.SUCCESS(f"ECR Portal: open {url}"))
        if not admin.created:
            out.write(f"  Sign in as {admin.username} (admin account created on first start).")
            out.write(f"  Lost its password? Set a new one: {password_command(admin.username)}")
        elif admin.one_time_password:
            out.write(f"  First admin account: {admin.username}")
            out.write(f"  One-time password:   {admin.one_time_password}")
            out.write(
                "  It is shown only now; you will choose your own password at first sign-in."
            )
        else:
            out.write(f"  First admin account: {admin.username}, with ECRPORTAL_ADMIN_PASSWORD.")
        out.write("")
