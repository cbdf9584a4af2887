# The task's expiry is its credential's (issue 23): the copy on the task goes.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0014_trust_rule_disabled_full_match_patterns"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="taskconfig",
            name="task_recorded_expiry",
        ),
        migrations.RemoveField(
            model_name="taskconfig",
            name="expires_at",
        ),
        migrations.AlterField(
            model_name="credential",
            name="expires_at",
            field=models.DateTimeField(db_index=True),
        ),
    ]
