"""The services (tasks_app/services/): runs, refresh, connectors, people, teams, tasks,
notifications."""
