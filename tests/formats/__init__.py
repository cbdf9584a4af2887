"""What the portal writes for others to read (tasks_app/formats/): shell snippets,
Kubernetes secrets."""
