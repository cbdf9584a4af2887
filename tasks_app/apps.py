from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "ECR Portal"

    def ready(self):
        from django.conf import settings

        from tasks_app import checks, logs  # noqa: F401 - checks registers itself

        logs.install()
        logs.secret_register(settings.EMAIL_HOST_PASSWORD)
        logs.secret_register(settings.OIDC_RP_CLIENT_SECRET)
