from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("tasks_app.api.urls")),
    path("", include("tasks_app.urls")),
]

# Error answers: pages for people, JSON {"error", "detail"} under /api/.
handler400 = "tasks_app.views.errors.bad_request"
handler403 = "tasks_app.views.errors.permission_denied"
handler404 = "tasks_app.views.errors.page_not_found"
handler500 = "tasks_app.views.errors.server_error"
