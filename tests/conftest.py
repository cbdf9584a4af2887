import os
import shutil
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from tasks_app.models import Membership, Role, Team
from tests.helpers import ARTIFACTS, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # No collectstatic before tests: serve static files from the apps' folders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # A fast hasher for users made in this process. Child processes keep the real ones.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


def make_user(username: str, *, password: str = PASSWORD, **fields):
    fields.setdefault("email", f"{username}@example.com")
    return get_user_model().objects.create_user(username=username, password=password, **fields)


def make_team(name: str, **members: Role) -> Team:
    team = Team.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    for username, role in members.items():
        Membership.objects.create(team=team, user=make_user(username), role=role)
    return team


@pytest.fixture
def alice(db):
    """A team admin of team A."""
    team = make_team("Team A", alice=Role.ADMIN)
    return team.members.get()


@pytest.fixture
def team_a(alice):
    return Team.objects.get(name="Team A")


@pytest.fixture
def team_b(db):
    return make_team("Team B", bob=Role.ADMIN, bea=Role.VIEWER)


@pytest.fixture
def redis_url():
    """A Redis server for broker tests, emptied first. Skips (or fails) without one."""
    import redis

    url = django_settings.CELERY_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss"):
        url = os.environ.get("ECRPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        require(False, f"Redis is not reachable at {url} ({e.__class__.__name__})")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright. Never downloads a browser."""
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)",
    )
    # Playwright's sync API runs an event loop in this thread; the Django ORM
    # calls made by the tests themselves are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    screenshots = ARTIFACTS / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / f"{request.node.name}-final.png"), full_page=True)
    context.close()
