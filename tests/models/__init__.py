"""The models and their migrations (tasks_app/models/, tasks_app/migrations/)."""
