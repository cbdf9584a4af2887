"""Who may see and do what (tasks_app/policy/): every URL for every caller, team isolation,
references."""
