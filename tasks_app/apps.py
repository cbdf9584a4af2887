from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "ECR Portal"

    def ready(self):
        from django.conf import settings

        from tasks_app import checks  # noqa: F401 (registers the system checks)
        from tasks_app.lib import log_masking as logs

        logs.install()
        logs.secret_register(settings.EMAIL_HOST_PASSWORD)
        logs.secret_register(settings.OIDC_RP_CLIENT_SECRET)
