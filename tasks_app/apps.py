from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "ECR Portal"

    def ready(self):
        from django.conf import settings

        from tasks_app import logs

        logs.install()
        logs.secret_register(settings.EMAIL_HOST_PASSWORD)
