"""Single sign-on with OpenID Connect: mozilla-django-oidc's authorization code flow (with
PKCE, state and nonce), pointed at the provider's discovery document and held to the ID
token rules it leaves to its users (issuer, audience, expiry). Who may in, and as which
account, is decided by tasks_app/services/sso.py.
"""

import logging

import jwt
import requests
from cachetools import cached
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from tasks_app.identity.actor import Actor
from tasks_app.identity.client_address import client_address
from tasks_app.lib import caches, metrics
from tasks_app.services.audit import audit_record
from tasks_app.services.logins import login_succeeded
from tasks_app.services.sso import SsoRefused, provider_claims, sso_sign_in

logger = logging.getLogger("ecrportal.sso")

LEEWAY_SECONDS = 60
# mozilla-django-oidc's settings that come from the provider's discovery document.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class ProviderUnavailable(Exception):
    """The identity provider's discovery document cannot be had; the message says why."""


def provider_configuration() -> dict:
    """The issuer's discovery document (/.well-known/openid-configuration), kept for an
    hour per process (tasks_app/lib/caches.py); its issuer must be the configured one
    (OpenID Connect Discovery §4.3)."""
    return _discovery(settings.OIDC_ISSUER)


@cached(caches.sso_discovery, lock=caches.sso_discovery_lock)
def _discovery(issuer: str | None) -> dict:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as e:
        raise ProviderUnavailable(
            f"The identity provider did not answer its discovery document at {url} "
            f"({e.__class__.__name__})."
        ) from None
    missing = [key for key in DISCOVERED.values() if not document.get(key)]
    if document.get("issuer") != issuer or missing:
        raise ProviderUnavailable(
            f"The discovery document at {url} names issuer {document.get('issuer')!r}"
            + (f" and lacks {', '.join(missing)}" if missing else "")
            + f"; ECRPORTAL_OIDC_ISSUER is {issuer!r}."
        )
    return document


def _settings(attr, *args):
    """mozilla-django-oidc's settings, its provider endpoints from discovery."""
    if attr in DISCOVERED:
        return provider_configuration()[DISCOVERED[attr]]
    return import_from_settings(attr, *args)


class PortalOIDCBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(_settings)

    def __init__(self, *args, **kwargs):
        # Django builds a backend for every request that carries a session (get_user):
        # the provider's settings are read when someone signs in, not here.
        self.UserModel = get_user_model()

    def get_user(self, user_id):
        """As Django's ModelBackend: a deactivated person's sessions end at once."""
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def authenticate(self, request, **kwargs):
        if not settings.OIDC_ENABLED or request is None or "code" not in request.GET:
            return None
        super().__init__()  # the provider's endpoints and the client's settings, now
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The signature (by the provider's JWKS) and the nonce, as mozilla-django-oidc
        checks them; then what it leaves out: issuer, audience and expiry."""
        try:
            payload = super().verify_token(token, **kwargs)
            # Decoded again for the claims (the signature is checked above; PyJWT turns
            # every other check off with it unless each is asked for).
            jwt.decode(
                token,
                options={
                    "verify_signature": False,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                    "require": ["iss", "aud", "exp", "iat"],
                },
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=LEEWAY_SECONDS,
                algorithms=[settings.OIDC_RP_SIGN_ALGO],
            )
        except jwt.PyJWTError as e:
            raise SuspiciousOperation(f"The ID token is not valid: {e}.") from None
        audiences = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        if len(audiences) > 1 and payload.get("azp") != settings.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("The ID token is for several parties, not this portal.")
        return payload

    def verify_claims(self, claims):
        return True  # sso_sign_in decides

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        claims = provider_claims(payload, userinfo)
        actor = Actor(address=client_address(self.request), label="sso")
        try:
            return sso_sign_in(issuer=str(settings.OIDC_ISSUER), claims=claims, actor=actor)
        except SsoRefused as e:
            self.request.sso_refusal = str(e)
            audit_record(
                action="login.failed",
                summary=f"Single sign-on refused: {e}",
                actor=Actor(address=actor.address, label=str(claims.get("email") or "sso")),
                changes={"subject": str(claims.get("sub") or ""), "sso": True},
            )
            return None


def _refused(request, reason: str):
    metrics.authentication_failed("sign_on")
    messages.error(request, f"Single sign-on failed: {reason}")
    return redirect("login")


class SignOnStart(OIDCAuthenticationRequestView):
    """Sends the browser to the provider (state, nonce and a PKCE challenge kept in the
    session)."""

    get_settings = staticmethod(_settings)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = _settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnavailable as e:
            logger.warning("%s", e)
            return _refused(request, str(e))
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SignOnCallback(OIDCAuthenticationCallbackView):
    """The provider's answer: the code exchanged (with the PKCE verifier), the ID token
    checked, the person signed in; any failure back on the sign-in page, saying why."""

    get_settings = staticmethod(_settings)

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        if "state" in request.GET and request.GET["state"] not in request.session.get(
            "oidc_states", {}
        ):
            return self._failed(request, "the answer does not belong to a sign-in started here")
        try:
            return super().get(request)
        except SuspiciousOperation as e:
            return self._failed(request, str(e).rstrip("."))
        except (requests.RequestException, ProviderUnavailable) as e:
            return self._failed(request, f"the identity provider did not answer ({e})")

    def _failed(self, request, reason: str):
        audit_record(
            action="login.failed",
            summary=f"Single sign-on failed: {reason}",
            actor=Actor(address=client_address(request), label="sso"),
            changes={"sso": True},
        )
        return _refused(request, reason + ".")

    def login_failure(self):
        reason = getattr(self.request, "sso_refusal", None)
        if reason is None and self.request.GET.get("error"):
            reason = "the identity provider answered " + self.request.GET["error"][:100]
        return _refused(self.request, reason or "the provider's answer was not accepted.")

    def login_success(self):
        response = super().login_success()
        login_succeeded(actor=Actor(user=self.user, address=client_address(self.request)))
        return response


# The routed views (tasks_app/urls.py): reached before anyone is signed in.
sign_on_start = login_not_required(SignOnStart.as_view())
sign_on_callback = login_not_required(SignOnCallback.as_view())
