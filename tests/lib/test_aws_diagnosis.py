"""The one diagnosis of a failed AWS call (lib/aws.py: diagnose, explain, plain_message)."""

import json

import pytest

from tasks_app.lib import aws
from tasks_app.lib.log_masking import MASK, secret_register
from tests.hostile_aws import BAD_GATEWAY_HTML, GARBAGE, SIGNATURE_XML

ECR = "ecr:GetAuthorizationToken"
STS = "sts:GetCallerIdentity"
PRINCIPAL = aws.Principal(credentials="access_key", access_key_id="AKIAIOSFODNN7EXAMPLE")


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?><Error><Code>X</Code></Error>',
        "<html><body>Denied</body></html>",
        "Denied by <b>policy</b>",
        "a &amp; b",
        "x" * (aws.MESSAGE_LIMIT + 1),
        "bad \x00 bytes",
        'Traceback (most recent call last):\n  File "x.py", line 1',
    ],
)
def test_markup_binary_stacks_and_essays_are_not_plain_words(text):
    assert aws.plain_message(text) == ""


def test_plain_words_stay_on_one_line():
    assert aws.plain_message("  User: arn:aws:iam::1:user/ci is\nnot authorized  ") == (
        "User: arn:aws:iam::1:user/ci is not authorized"
    )
    assert aws.plain_message("Value must be 1 < x") == "Value must be 1 < x"


@pytest.mark.parametrize(
    "message", [SIGNATURE_XML.decode(), BAD_GATEWAY_HTML.decode(), "y" * 20_000]
)
def test_an_unknown_code_never_quotes_markup_or_an_essay(message):
    explanation = aws.explain(ECR, "SomethingNew", message, PRINCIPAL)
    assert explanation == f"AWS answered {ECR} with SomethingNew."


def test_an_unknown_code_quotes_plain_words():
    assert aws.explain(ECR, "SomethingNew", "It broke.", PRINCIPAL) == (
        f"AWS answered {ECR} with SomethingNew: It broke."
    )


def test_the_code_inside_an_xml_body_a_json_client_could_not_read_is_recognised():
    # ECR speaks JSON: botocore gives the status as the code and the XML as the message.
    code, message, explanation = aws.diagnose(
        ECR, PRINCIPAL, code="403", message=SIGNATURE_XML.decode(), status=403, body=SIGNATURE_XML
    )
    assert code == "SignatureDoesNotMatch"
    assert message.startswith("The request signature we calculated")
    assert explanation == aws.explain(ECR, "SignatureDoesNotMatch", "", PRINCIPAL)
    assert "secret access key does not belong" in explanation


def test_the_code_inside_a_json_body_an_xml_client_could_not_read_is_recognised():
    body = json.dumps(
        {"__type": "com.amazon.coral.service#AccessDeniedException", "message": "No."}
    ).encode()
    code, _, explanation = aws.diagnose(STS, PRINCIPAL, code="", message="", status=400, body=body)
    assert code == "AccessDeniedException"
    assert explanation == f"AWS denied {STS}: No."


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (403, BAD_GATEWAY_HTML, "HTTP 403 Forbidden with an HTML page. Something other than AWS"),
        (502, BAD_GATEWAY_HTML, "HTTP 502 Bad Gateway with an HTML page. AWS, or a proxy"),
        (500, GARBAGE, "HTTP 500 Internal Server Error with a body that is no AWS answer."),
        (503, b"", "HTTP 503 Service Unavailable with no body."),
        (404, b"<Foo><Bar/></Foo>", "with an XML document that is no AWS error."),
        (400, b'{"Code": "<script>"}', "with a JSON document that is no AWS error."),
    ],
)
def test_an_answer_that_is_not_from_aws_is_said_so(status, body, words):
    code, message, explanation = aws.diagnose(
        ECR,
        PRINCIPAL,
        code=str(status),
        message=body.decode(errors="replace"),
        status=status,
        body=body,
    )
    assert code == f"HTTP {status}"
    assert message == ""
    assert explanation.startswith(f"No AWS answer to {ECR}: ")
    assert words in explanation
    assert "<" not in explanation


def test_a_code_that_is_markup_or_huge_is_no_code():
    lol = b"<Error><Code>" + b"lol" * 100 + b"</Code></Error>"
    code, _, explanation = aws.diagnose(ECR, PRINCIPAL, code="", message="", status=400, body=lol)
    assert code == "HTTP 400"
    assert "lol" not in explanation


def test_the_kept_answer_is_capped_and_masked(hostile_aws):
    secret_register("Sentinel-Secret-In-An-Answer")
    body = b"<html><p>Sentinel-Secret-In-An-Answer</p>" + b"x" * 50_000 + b"</html>"
    hostile_aws.answer = (502, "text/html", body)

    with pytest.raises(aws.AwsError) as failed:
        aws.ecr_authorization(PRINCIPAL, caller="ecrportal-test", region="eu-west-1")

    answer = failed.value.answer
    assert answer.startswith("HTTP 502 Bad Gateway\n<html><p>" + MASK)
    assert "Sentinel-Secret" not in answer
    assert len(answer) < aws.ANSWER_LIMIT + 100
    assert answer.endswith(f"(cut; {len(body)} bytes in all)")
    assert failed.value.code == "HTTP 502"
    assert "<" not in failed.value.explanation


def test_an_unparsable_xml_answer_is_diagnosed_not_raised(hostile_aws, aws_endpoint, settings):
    # STS speaks XML; botocore's parser fails on garbage with ResponseParserError.
    settings.AWS_ENDPOINT_URL = hostile_aws.url
    hostile_aws.answer = (400, "text/plain", GARBAGE)

    with pytest.raises(aws.AwsError) as failed:
        aws.caller_identity(PRINCIPAL, caller="ecrportal-test", interactive=True)

    assert failed.value.code == "HTTP 400"
    assert failed.value.explanation.startswith(f"No AWS answer to {STS}: HTTP 400 Bad Request")
    assert "garbage" in failed.value.answer


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidSignatureException"])
def test_a_wrong_secret_reads_the_same_from_sts_and_from_ecr(code):
    """STS (a query service) says SignatureDoesNotMatch; ECR (a JSON service) says
    InvalidSignatureException for the same mistake."""
    explanation = aws.explain(ECR, code, "The request signature we calculated…", PRINCIPAL)
    assert explanation.startswith("The secret access key does not belong to this access key")
