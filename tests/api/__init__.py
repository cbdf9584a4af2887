"""The HTTP API (tasks_app/api/): endpoints, configuration, the schema (schemathesis),
registry formats, the credential helper."""
