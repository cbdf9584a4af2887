from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView

from tasks_app.views import api

urlpatterns = [
    path("tasks/<uuid:task_id>/variables", api.task_variables, name="api_task_variables"),
    path("tasks/<uuid:task_id>/env", api.task_env, name="api_task_env"),
    path("tasks/<uuid:task_id>/run", api.task_run_now, name="api_task_run"),
    path("plans/<str:plan_key>/variables", api.plan_variables, name="api_plan_variables"),
    path(
        "schema/",
        login_not_required(
            SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer])
        ),
        name="api_schema",
    ),
]
