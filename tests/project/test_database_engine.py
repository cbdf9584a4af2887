import pytest
from django.db import connection

from tests.helpers import REQUIRE_SERVICES, require


@pytest.mark.django_db
def test_the_suite_runs_on_postgresql_when_services_are_required():
    require(
        connection.vendor == "postgresql",
        f"the suite runs on {connection.vendor}; set DATABASE_URL=postgres://... "
        "to run it on PostgreSQL",
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        version = int(cursor.fetchone()[0])
    assert version >= 140000
    if REQUIRE_SERVICES:
        assert connection.settings_dict["NAME"].startswith("test_")
