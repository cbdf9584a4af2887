from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.timezone import now

from tasks_app.models import Connector, Job, Membership, Plan, Role, Scope, TaskConfig, Team

# The AWS documentation's example key: the stand-in accepts any.
DEMO_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DEMO_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS docs example


class Command(BaseCommand):
    help = (
        "Create a demo team, connector, plan, job and task (once) for trying the portal "
        "against the local AWS stand-in (python -m devtools.aws_standin). The first admin becomes "
        "the demo team's admin."
    )

    def handle(self, *args, **options):
        admin = get_user_model().objects.filter(is_superuser=True).order_by("date_joined").first()
        if admin is None:
            raise CommandError("Create the first admin first: manage.py ensure_admin.")
        team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
        Membership.objects.get_or_create(team=team, user=admin, defaults={"role": Role.ADMIN})
        connector = Connector.objects.filter(team=team, name="demo-aws").first()
        if connector is None:
            connector = Connector(
                team=team,
                name="demo-aws",
                access_key_id=DEMO_KEY_ID,
                secret_access_key=DEMO_SECRET,
                created_by=admin,
            )
            connector.full_clean()
            connector.save()
        plan, _ = Plan.objects.get_or_create(
            key="DEMO-BUILD", defaults={"team": team, "name": "Demo build"}
        )
        job, _ = Job.objects.get_or_create(plan=plan, key="BUILD", defaults={"name": "Build"})
        task, created = TaskConfig.objects.get_or_create(
            job=job,
            namespace="custom.aws",
            defaults={
                "description": "Demo registry credentials",
                "region": "eu-west-1",
                "connector": connector,
                "scope": Scope.RESULT,
                "refresh_due_at": now(),
            },
        )
        what = "Created" if created else "Kept"
        self.stdout.write(
            f"{what} the demo: team Demo, connector demo-aws, plan DEMO-BUILD, job BUILD, "
            f"task {task.id}. The scheduler fetches its credentials within a minute."
        )
