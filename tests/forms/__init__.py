"""The forms (tasks_app/forms/), fuzzed."""
