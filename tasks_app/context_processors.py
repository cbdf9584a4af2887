from django.conf import settings


def portal(request):
    return {
        "site_name": settings.SITE_NAME,
        # Single sign-on: the button's label, or None when it is off.
        "sso_name": settings.OIDC_NAME if settings.OIDC_ENABLED else None,
        "local_passwords": settings.LOCAL_PASSWORDS,
    }
