from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from tasks_app.api import configuration as api_config
from tasks_app.api import registry as api_registry
from tasks_app.api import variables as api

router = SimpleRouter(trailing_slash=False)
router.register("connectors", api_config.ConnectorViewSet, basename="api_connector")
router.register("plans", api_config.PlanViewSet, basename="api_plan")
router.register("jobs", api_config.JobViewSet, basename="api_job")
router.register("tasks", api_config.TaskViewSet, basename="api_task")
router.register("variables", api_config.VariableViewSet, basename="api_variable")

urlpatterns = [
    path("tasks/<uuid:task_id>/variables", api.task_variables, name="api_task_variables"),
    path("tasks/<uuid:task_id>/env", api.task_env, name="api_task_env"),
    path("tasks/<uuid:task_id>/run", api.task_run_now, name="api_task_run"),
    path("plans/<str:plan_key>/variables", api.plan_variables, name="api_plan_variables"),
    path("plans/<str:plan_key>/env", api.plan_env, name="api_plan_env"),
    path(
        "tasks/<uuid:task_id>/docker-config",
        api_registry.task_docker_config,
        name="api_task_docker_config",
    ),
    path(
        "tasks/<uuid:task_id>/kubernetes-secret",
        api_registry.task_kubernetes_secret,
        name="api_task_kubernetes_secret",
    ),
    path(
        "plans/<str:plan_key>/docker-config",
        api_registry.plan_docker_config,
        name="api_plan_docker_config",
    ),
    path(
        "plans/<str:plan_key>/kubernetes-secret",
        api_registry.plan_kubernetes_secret,
        name="api_plan_kubernetes_secret",
    ),
    path("docker-config", api_registry.token_docker_config, name="api_token_docker_config"),
    path(
        "kubernetes-secret",
        api_registry.token_kubernetes_secret,
        name="api_token_kubernetes_secret",
    ),
    path(
        "schema/",
        login_not_required(
            SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer])
        ),
        name="api_schema",
    ),
    *[
        # Each view authenticates itself (token or session) and answers 401 JSON.
        URLPattern(route.pattern, login_not_required(route.callback), name=route.name)
        for route in router.urls
        if isinstance(route, URLPattern)
    ],
]
