from django.shortcuts import redirect

from tasks_app.views.accounts import SESSION_MUST_CHANGE_PASSWORD, logout_view, password_change

# Our own pages load nothing from elsewhere and run no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Django's admin sets a few inline style attributes.
ADMIN_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


class PasswordChangeRequiredMiddleware:
    """Sends users who signed in with a one-time password to the password form first."""

    allowed_views = {password_change, logout_view}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        if not request.session.get(SESSION_MUST_CHANGE_PASSWORD):
            return None
        if view_func in self.allowed_views or not getattr(view_func, "login_required", True):
            return None
        return redirect("password_change")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            admin = request.path.startswith("/admin/")
            policy = ADMIN_CONTENT_SECURITY_POLICY if admin else CONTENT_SECURITY_POLICY
            response["Content-Security-Policy"] = policy
        return response
