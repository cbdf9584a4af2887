"""Amazon ECR Public's fixed facts, AWS data with no I/O: it issues its tokens in one region
(us-east-1) for one registry host (public.ecr.aws), and asking for a token needs two
actions. lib/aws.py makes the call with them; rules/task_settings.py fixes a public task's
region with them; pages name the host."""

REGION = "us-east-1"
HOST = "public.ecr.aws"
ENDPOINT = f"https://{HOST}"
# GetAuthorizationToken needs both: ECR Public's action and STS's service bearer token.
AUTH_ACTIONS = ("ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken")
