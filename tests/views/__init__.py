"""The pages (tasks_app/views/), the admin, error answers and security headers."""
