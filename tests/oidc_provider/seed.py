"""Creates the provider's people and the portal's client: python -m tests.oidc_provider.seed
<redirect URI> <client ID> <client secret>."""

import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

PASSWORD = "provider password"

PEOPLE = {
    "sso-dev": ("dev@corp.example", ["platform-devs"]),
    "sso-lead": ("lead@corp.example", ["platform-admins", "platform-devs"]),
    "outsider": ("someone@elsewhere.example", ["platform-devs"]),
    "expired": ("expired@corp.example", []),
    "wrong-audience": ("wrong@corp.example", []),
}


def main(redirect_uri: str, client_id: str, client_secret: str) -> None:
    for username, (email, groups) in PEOPLE.items():
        user = User.objects.create_user(username, email=email, password=PASSWORD)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    Application.objects.create(
        name="ECR Portal",
        client_id=client_id,
        client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
