from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.timezone import now

from tasks_app.lib import ecr_public
from tasks_app.models import Connector, Job, Membership, Plan, Role, Scope, TaskConfig, Team

# The AWS documentation's example key, the one the stand-in knows (devtools/aws_standin.py;
# tests/integration/test_aws_standin.py checks that both say the same).
DEMO_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DEMO_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS docs example
# The same key ID with a mistyped secret: the stand-in answers SignatureDoesNotMatch, as AWS
# does, so the demo shows the portal's diagnosis on Test connection and in a run.
WRONG_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEX"  # noqa: S105 - deliberately wrong
FAILING_CONNECTOR = "demo-aws-wrong-secret"
FAILING_NAMESPACE = "custom.failing"
FAILING_PLAN = "DEMO-FAILURE"
PUBLIC_NAMESPACE = "custom.public"


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
        connector = self._connector(team, admin, "demo-aws", DEMO_SECRET)
        failing = self._connector(team, admin, FAILING_CONNECTOR, WRONG_SECRET)
        plan, _ = Plan.objects.get_or_create(
            key="DEMO-BUILD", defaults={"team": team, "name": "Demo build"}
        )
        job, _ = Job.objects.get_or_create(plan=plan, key="BUILD", defaults={"name": "Build"})
        task, created = self._task(job, "custom.aws", connector, "Demo registry credentials")
        self._task(
            job,
            PUBLIC_NAMESPACE,
            connector,
            "Demo of Amazon ECR Public (public.ecr.aws)",
            registry=TaskConfig.Registry.PUBLIC,
        )
        # The failure in a plan of its own: DEMO-BUILD's reveal, its API and the tokens
        # page's example (which answer 409 while any task they cover has no credentials)
        # keep working.
        broken, _ = Plan.objects.get_or_create(
            key=FAILING_PLAN, defaults={"team": team, "name": "Demo of a failure"}
        )
        broken_job, _ = Job.objects.get_or_create(
            plan=broken, key="BUILD", defaults={"name": "Build"}
        )
        self._task(
            broken_job, FAILING_NAMESPACE, failing, "Demo of a failure: a mistyped secret key"
        )
        what = "Created" if created else "Kept"
        self.stdout.write(
            f"{what} the demo: team Demo, connector demo-aws, plan DEMO-BUILD, job BUILD, "
            f"task {task.id}, and the task {PUBLIC_NAMESPACE} for Amazon ECR Public "
            "(public.ecr.aws). The scheduler fetches their credentials within a minute. "
            f"The connector {FAILING_CONNECTOR} and the task {FAILING_NAMESPACE} of plan "
            f"{FAILING_PLAN} show a failure: their secret key is mistyped (try Test "
            "connection on the connector)."
        )

    def _connector(self, team, admin, name: str, secret: str) -> Connector:
        connector = Connector.objects.filter(team=team, name=name).first()
        if connector is None:
            connector = Connector(
                team=team,
                name=name,
                access_key_id=DEMO_KEY_ID,
                secret_access_key=secret,
                created_by=admin,
            )
            connector.full_clean()
            connector.save()
        return connector

    def _task(
        self,
        job,
        namespace: str,
        connector: Connector,
        description: str,
        registry: str = TaskConfig.Registry.PRIVATE,
    ):
        public = registry == TaskConfig.Registry.PUBLIC
        return TaskConfig.objects.get_or_create(
            job=job,
            namespace=namespace,
            defaults={
                "description": description,
                "registry": registry,
                "region": ecr_public.REGION if public else "eu-west-1",
                "connector": connector,
                "scope": Scope.RESULT,
                "refresh_due_at": now(),
            },
        )
