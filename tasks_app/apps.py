from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "ECR Portal"

    def ready(self):
        from tasks_app import logs

        logs.install()
