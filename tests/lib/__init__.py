"""The small libraries (tasks_app/lib/): encryption, log masking, compiled reads."""
