"""API v1: the portal's configuration (connectors, plans, jobs, tasks, variables).

For people (session authentication); API tokens only read credentials. Each
serializer runs the model's field checks; the save services check the rest
(tasks_app/services/validation.py) for the API and the forms alike, so both share every
rule and message. Saving and deleting go through the audited services.
Secrets are write-only.
"""

from typing import cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import permissions, serializers, viewsets
from rest_framework.validators import UniqueValidator

from tasks_app.api.plumbing import Conflict, token_of
from tasks_app.identity.actor import actor_for
from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, Team, Variable
from tasks_app.policy.access import (
    CONNECTOR_OWNER_FIELDS,
    ConnectorAccess,
    connector_access,
    connector_owner_fields_visible,
    connectors_for_user,
    require_team_role,
    team_roles,
    teams_for_user,
)
from tasks_app.policy.loaders import connector_for_user
from tasks_app.services.connectors import ConnectorInUse, connector_delete, connector_save
from tasks_app.services.plans import (
    job_delete,
    job_save,
    plan_delete,
    plan_save,
    task_delete,
    task_save,
    variable_delete,
    variable_save,
)
from tasks_app.services.validation import task_validate


class PeopleOnly(permissions.BasePermission):
    message = "API tokens read credentials only; configuration needs a signed-in person."

    def has_permission(self, request, view):
        return request.user.is_authenticated and token_of(request) is None


def _json_type_error(field, value) -> str | None:
    """What is wrong with a JSON value's type for this field, as the schema documents it;
    DRF alone would coerce 0 into False, 7 into "7" and "" into null."""
    if value is None:
        return None if field.allow_null else "This field may not be null."
    if isinstance(field, serializers.RelatedField) and value == "":
        return "Expected an ID, or null."
    if isinstance(field, serializers.ManyRelatedField):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return None
        return "Expected a list of IDs (strings)."
    expected = (
        (serializers.BooleanField, bool, "true or false"),
        (serializers.IntegerField, int, "an integer"),
        (serializers.CharField, str, "a string"),
        (serializers.ChoiceField, str, "a string"),
        (serializers.RelatedField, str, "an ID (a string)"),
    )
    for kind, python_type, words in expected:
        if isinstance(field, kind):
            valid = isinstance(value, python_type) and not (
                python_type is int and isinstance(value, bool)
            )
            return None if valid else f"Expected {words}."
    return None


class _Validated(serializers.ModelSerializer):
    """Builds the instance from the input and runs the model's full_clean().

    JSON values must have the type the schema gives their field (no coercion).
    """

    write_fields: tuple[str, ...] = ()

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():  # uniqueness is the save service's, with its message
            field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
        return fields

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for name, field in self.fields.items():
                if not field.read_only and name in data:
                    problem = _json_type_error(field, data[name])
                    if problem:
                        errors[name] = [problem]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def build(self, attrs) -> models.Model:
        model: type[models.Model] = self.Meta.model
        instance = self.instance or model()
        for name, value in attrs.items():
            if name in self.write_fields or not self.fields[name].write_only:
                field = model._meta.get_field(name)
                if not field.many_to_many:
                    setattr(instance, name, value)
        return instance

    def validate(self, attrs):
        instance = self.build(attrs)
        try:  # the save service checks uniqueness and other rows (one message per rule)
            self.validate_built(instance, attrs)
        except DjangoValidationError as e:
            raise serializers.ValidationError(serializers.as_serializer_error(e)) from None
        self.built = instance
        return attrs

    def validate_built(self, instance: models.Model, attrs) -> None:
        """The instance's own checks; a serializer whose save service has more rules runs
        them all here, so that one answer lists every error (as the form does)."""
        instance.full_clean(validate_unique=False, validate_constraints=False)


# --- connectors -------------------------------------------------------------------------


class ConnectorSerializer(_Validated):
    """An AWS connector: the AWS credentials a team's tasks use (an access key, or the
    portal host's identity), used as they are or to assume a role. The secret access key
    is write-only."""

    secret_access_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True
    )
    shared_with = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Team.objects.all(), required=False
    )
    write_fields = ("secret_access_key",)

    class Meta:
        model = Connector
        fields = [
            "id",
            "team",
            *Connector.SETTINGS,
            "created",
            "updated",
            "last_test_at",
            "last_test_ok",
            "last_test_message",
        ]
        read_only_fields = [
            "created",
            "updated",
            "last_test_at",
            "last_test_ok",
            "last_test_message",
        ]
        validators: list = []  # the save service checks the constraints, with its messages

    def to_representation(self, instance):
        data = super().to_representation(instance)
        context = cast(dict, self.context)  # the root's: shared by every item of a list
        user = context["request"].user
        if "roles" not in context:  # once per request, however many connectors
            context["roles"] = team_roles(user)
        access = connector_access(user, instance, roles=context["roles"])
        if not connector_owner_fields_visible(access):
            for name in CONNECTOR_OWNER_FIELDS:
                data[name] = None
        return data

    def build(self, attrs):
        attrs = dict(attrs)
        secret = attrs.pop("secret_access_key", "")
        if self.instance is not None and "team" in attrs and attrs["team"] != self.instance.team:
            raise serializers.ValidationError({"team": ["The owner team cannot change."]})
        instance = super().build(attrs)
        assert isinstance(instance, Connector)
        self.secret_changed = bool(secret)
        if secret:
            instance.secret_access_key = secret
        return instance


UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _schema_only(view) -> bool:
    """drf-spectacular inspects views without a request."""
    return getattr(view, "swagger_fake_view", False)


class ConnectorViewSet(viewsets.ModelViewSet):
    serializer_class = ConnectorSerializer
    permission_classes = [PeopleOnly]
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if _schema_only(self):
            return Connector.objects.none()
        return (
            connectors_for_user(self.request.user)
            .select_related("team")
            .prefetch_related("shared_with")
        )

    def get_object(self):
        """The connector as its page loads it (policy/loaders.py): the same 404 and 403."""
        need = ConnectorAccess.VIEW if self.request.method == "GET" else ConnectorAccess.MANAGE
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        connector, _ = connector_for_user(self.request.user, lookup, need=need)
        self.check_object_permissions(self.request, connector)
        return connector

    def _save(self, serializer):
        team = serializer.built.team
        require_team_role(self.request.user, team, Role.ADMIN)
        shared = serializer.validated_data.get("shared_with")
        if shared is None:
            shared = list(serializer.built.shared_with.all()) if serializer.built.pk else []
        serializer.instance = connector_save(
            connector=serializer.built,
            shared_with=list(shared),
            secret_changed=serializer.secret_changed,
            actor=actor_for(self.request),
        )

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        try:
            connector_delete(connector=instance, actor=actor_for(self.request))
        except ConnectorInUse as e:
            raise Conflict("in_use", str(e)) from None


# --- plans, jobs, tasks, variables ------------------------------------------------------


def _team_scoped(model, user, team_path: str):
    return model.objects.filter(**{f"{team_path}__in": teams_for_user(user)})


class _TeamScopedViewSet(viewsets.ModelViewSet):
    """Members read; editors and admins write. Other teams' objects are 404."""

    permission_classes = [PeopleOnly]
    team_path = "team"
    lookup_value_regex = UUID_PATTERN

    def team_of(self, obj) -> Team:
        for part in self.team_path.split("__"):
            obj = getattr(obj, part)
        return obj

    @property
    def model(self) -> type[models.Model]:
        serializer = cast(type[_Validated], self.get_serializer_class())
        return cast(type[models.Model], serializer.Meta.model)

    def get_queryset(self):
        if _schema_only(self):
            return self.model._default_manager.none()
        return _team_scoped(self.model, self.request.user, self.team_path)

    def get_object(self):
        obj = super().get_object()
        if self.request.method != "GET":
            require_team_role(self.request.user, self.team_of(obj), Role.EDITOR)
        return obj

    def check_team(self, obj) -> None:
        require_team_role(self.request.user, self.team_of(obj), Role.EDITOR)


class PlanSerializer(_Validated):
    """A plan of a team: its jobs, tasks and variables."""

    class Meta:
        model = Plan
        fields = ["id", "team", "key", "name", "created"]
        read_only_fields = ["created"]


class PlanViewSet(_TeamScopedViewSet):
    serializer_class = PlanSerializer
    lookup_field = "key"
    lookup_value_regex = "[A-Z][A-Z0-9]{1,9}-[A-Z][A-Z0-9]{1,9}"

    def perform_create(self, serializer):
        self.check_team(serializer.built)
        serializer.instance = plan_save(plan=serializer.built, actor=actor_for(self.request))

    def perform_update(self, serializer):
        if serializer.built.team_id != serializer.instance.team_id:
            raise serializers.ValidationError({"team": ["A plan cannot move to another team."]})
        serializer.instance = plan_save(plan=serializer.built, actor=actor_for(self.request))

    def perform_destroy(self, instance):
        plan_delete(plan=instance, actor=actor_for(self.request))


class JobSerializer(_Validated):
    """A job of a plan: its tasks' local-scope variables are seen by this job only."""

    class Meta:
        model = Job
        fields = ["id", "plan", "key", "name", "stage", "created"]
        read_only_fields = ["created"]
        validators: list = []


class JobViewSet(_TeamScopedViewSet):
    serializer_class = JobSerializer
    team_path = "plan__team"

    def _save(self, serializer):
        self.check_team(serializer.built)
        serializer.instance = job_save(job=serializer.built, actor=actor_for(self.request))

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        job_delete(job=instance, actor=actor_for(self.request))


class TaskSerializer(_Validated):
    """An Amazon ECR credentials task: where to fetch an authorization token (region,
    registry, connector or the portal host's identity) and the variables it is stored as
    (namespace, scope)."""

    class Meta:
        model = TaskConfig
        fields = [
            "id",
            "job",
            "position",
            *TaskConfig.SETTINGS,
            "status",
            "expires_at",
            "last_run_at",
            "last_run_ok",
            "last_error",
            "allow_undefined_variables",
        ]
        read_only_fields = ["position", "expires_at", "last_run_at", "last_run_ok", "last_error"]

    status = serializers.CharField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    allow_undefined_variables = serializers.BooleanField(
        required=False,
        default=False,
        write_only=True,
        help_text="Save although a ${bamboo.<key>} reference does not resolve now (the "
        "variable will be defined and valid when the task runs).",
    )
    # How a client confirms, in a reference's error (services/validation.py).
    CONFIRM_REFERENCES = "send allow_undefined_variables: true"

    def validate_built(self, instance, attrs) -> None:
        """Every rule of the task at once (services/validation.py), once the person may
        change the job's tasks: the rules read the plan's variables."""
        view = self.context.get("view")
        if isinstance(view, TaskViewSet):
            view.check_team(instance.job.plan)
        task_validate(
            instance,
            unresolved_allowed=attrs.get("allow_undefined_variables", False),
            confirm=self.CONFIRM_REFERENCES,
        )

    def get_fields(self):
        """Connectors the person may not see are unknown here, in the words DRF uses for an
        ID that exists nowhere: the field is no oracle of other teams' connectors."""
        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        connector = fields["connector"]
        if isinstance(user, get_user_model()):
            connector.queryset = connectors_for_user(user)
        else:  # no person (a token, the schema's generator): no connector
            connector.queryset = Connector.objects.none()
        return fields


class TaskViewSet(_TeamScopedViewSet):
    serializer_class = TaskSerializer
    team_path = "job__plan__team"

    def get_queryset(self):
        return super().get_queryset().select_related("job__plan__team", "connector", "credential")

    def _save(self, serializer):
        self.check_team(serializer.built.job.plan)
        serializer.instance = task_save(
            task=serializer.built,
            actor=actor_for(self.request),
            unresolved_allowed=serializer.validated_data.get("allow_undefined_variables", False),
            confirm=TaskSerializer.CONFIRM_REFERENCES,
        )

    perform_create = perform_update = _save

    def check_team(self, plan) -> None:
        require_team_role(self.request.user, plan.team, Role.EDITOR)

    def perform_destroy(self, instance):
        task_delete(task=instance, actor=actor_for(self.request))


class VariableSerializer(_Validated):
    """A variable of a team (global) or of one plan (which overrides the global one); tasks
    refer to it as ${bamboo.<key>}. Keys naming a password, secret, passphrase or SSH key
    have their values encrypted and masked."""

    value = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Write-only for masked keys (password, secret, passphrase, sshkey): read as "
        "null.",
    )
    masked = serializers.BooleanField(read_only=True)

    class Meta:
        model = Variable
        fields = ["id", "team", "plan", "key", "value", "masked", "updated"]
        read_only_fields = ["updated"]
        validators: list = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["value"] = None if instance.masked else instance.value
        return data

    def build(self, attrs):
        attrs = dict(attrs)
        self.new_value = attrs.pop("value", None)
        return super().build(attrs)


class VariableViewSet(_TeamScopedViewSet):
    serializer_class = VariableSerializer

    def _save(self, serializer):
        self.check_team(serializer.built)
        value = serializer.new_value
        if value is None and serializer.built._state.adding:
            value = ""
        serializer.instance = variable_save(
            variable=serializer.built, value=value, actor=actor_for(self.request)
        )

    perform_create = perform_update = _save

    def perform_destroy(self, instance):
        variable_delete(variable=instance, actor=actor_for(self.request))
