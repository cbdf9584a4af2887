from functools import partial

from django.conf import settings

from tasks_app.policy.access import may_read_audit_log


def portal(request):
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {
        # Asked only when a page's menu shows (one query), by the rule the page applies.
        "may_read_audit_log": partial(may_read_audit_log, user) if signed_in else False,
        "site_name": settings.SITE_NAME,
        # Single sign-on: the button's label, or None when it is off.
        "sso_name": settings.OIDC_NAME if settings.OIDC_ENABLED else None,
        "local_passwords": settings.LOCAL_PASSWORDS,
    }
