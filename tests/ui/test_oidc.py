"""Signing in through a real OpenID Connect provider: npm's certified `oidc-provider`,
started on loopback by a fixture (tests/ui/oidc_provider/provider.mjs).

The portal runs in pytest-django's live server; a `requests` session plays the browser
across both. The provider checks passwords itself and serves the groups claim from
userinfo; the portal maps the groups to roles on every login.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model

from tests.services import port_open, service_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    # The live server answers from its own thread and connection: data must be committed.
    # Migrations seed rows (families, the settings catalog) that later tests need back.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "portal"
CLIENT_SECRET = "portal-test-secret"
ROLE_MAP = {"farm-admins": "wiki-admin", "farm-ops": "ops", "farm-auditors": "auditor"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class IdentityProvider:
    """The node process, and its users file (read again at every login)."""

    def __init__(self, config_path: Path, portal_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = config_path
        self.config = {
            "issuer": self.url,
            "port": self.port,
            "client": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                # Exact matches: the live server calls itself localhost.
                "redirect_uris": [f"{portal_url}/oidc/callback/"],
                "post_logout_redirect_uris": [f"{portal_url}/login/"],
                "token_endpoint_auth_method": "client_secret_post",
                "id_token_signed_response_alg": "RS256",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
            "users": {},
        }
        self._write()
        self.log_path = config_path.with_suffix(".log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["node", "provider.mjs", str(config_path)],
                cwd=PROVIDER_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def _write(self) -> None:
        self.config_path.write_text(json.dumps(self.config))

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if port_open("127.0.0.1", self.port, timeout=0.2):
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"oidc-provider did not start:\n{self.log_path.read_text()}")

    def set_user(self, username: str, password: str, groups: list[str]) -> None:
        self.config["users"][username] = {"password": password, "groups": groups}
        self._write()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def identity_provider(live_server, tmp_path):
    if shutil.which("node") is None:
        service_unavailable("node is not installed (run .ci/install-ui.sh)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        service_unavailable("npm's oidc-provider is not installed (run .ci/install-ui.sh)")
    provider = IdentityProvider(tmp_path / "idp.json", live_server.url)
    yield provider
    provider.stop()


@pytest.fixture
def portal(settings, identity_provider, live_server):
    """The portal's OIDC login switched on, pointed at the provider (as the env would)."""
    idp = identity_provider.url
    settings.OIDC_LOGIN_ENABLED = True
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "portal.auth.FarmOIDCBackend",
    ]
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{idp}/auth"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{idp}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{idp}/me"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{idp}/jwks"
    settings.OIDC_OP_LOGOUT_ENDPOINT = f"{idp}/session/end"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_RP_SCOPES = "openid email profile groups"
    settings.OIDC_USE_PKCE = True
    settings.OIDC_STORE_ID_TOKEN = True
    settings.LOGIN_REDIRECT_URL_FAILURE = "/login/?failed=1"
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.FARM_OIDC_ROLE_MAP = ROLE_MAP
    return live_server.url


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def form_action(html: str) -> str:
    return re.search(r'<form[^>]*action="([^"]+)"', html).group(1)


def sign_in(portal_url: str, idp: IdentityProvider, username: str, password: str, session=None):
    """Walk the code flow as a browser: portal -> provider's login form -> portal."""
    session = session or requests.Session()
    login_page = session.get(f"{portal_url}/login/", timeout=10)
    assert "Sign in with Test IdP" in login_page.text
    provider_form = session.get(f"{portal_url}/oidc/authenticate/?next=/wikis/", timeout=10)
    assert provider_form.url.startswith(f"{idp.url}/interaction/"), provider_form.url
    answer = session.post(
        idp.url + form_action(provider_form.text),
        data={"login": username, "password": password},
        timeout=30,
    )
    return session, answer


def sign_out(portal_url: str, session: requests.Session) -> requests.Response:
    """POST the portal's logout form, then confirm at the provider's end-session page."""
    token = session.cookies.get("csrftoken")
    confirm = session.post(f"{portal_url}/logout/", data={"csrfmiddlewaretoken": token}, timeout=10)
    assert "/session/end" in confirm.url, confirm.url
    form = re.search(r'<form[^>]*id="op.logoutForm"[^>]*>.*?</form>', confirm.text, re.DOTALL)
    data = {**hidden_inputs(form.group(0)), "logout": "yes"}
    action = form_action(form.group(0))
    base = confirm.url.split("/session/end")[0]
    return session.post(base + action if action.startswith("/") else action, data=data, timeout=10)


def roles_of(username: str) -> set[str]:
    user = get_user_model().objects.get(username=username)
    return set(user.groups.values_list("name", flat=True))


def test_login_creates_the_user_with_roles_from_groups(portal, identity_provider):
    # A local account with carol's e-mail must not be taken over: users match by user name.
    get_user_model().objects.create_user("mallory", email="carol@example.test")
    identity_provider.set_user("carol", "carol-pw", ["farm-admins", "unrelated-group"])

    session, landing = sign_in(portal, identity_provider, "carol", "carol-pw")

    assert landing.url == f"{portal}/wikis/" and landing.status_code == 200
    assert "carol · wiki-admin" in landing.text
    carol = get_user_model().objects.get(username="carol")  # the name itself, not a hash
    assert carol.email == "carol@example.test" and not carol.has_usable_password()
    assert roles_of("carol") == {"wiki-admin"}
    assert roles_of("mallory") == set()
    assert session.get(f"{portal}/wikis/new/", timeout=10).status_code == 200
    assert session.get(f"{portal}/ops/unarchive-requests/", timeout=10).status_code == 403


def test_a_role_change_takes_effect_on_the_next_login(portal, identity_provider):
    identity_provider.set_user("dave", "dave-pw", ["farm-admins"])
    session, _ = sign_in(portal, identity_provider, "dave", "dave-pw")
    assert roles_of("dave") == {"wiki-admin"}

    identity_provider.set_user("dave", "dave-pw", ["farm-ops", "farm-auditors"])
    assert roles_of("dave") == {"wiki-admin"}  # nothing changes until dave signs in again
    sign_out(portal, session)
    session, landing = sign_in(portal, identity_provider, "dave", "dave-pw")

    assert roles_of("dave") == {"ops", "auditor"}
    assert get_user_model().objects.get(username="dave").is_staff  # ops use the admin
    assert session.get(f"{portal}/ops/unarchive-requests/", timeout=10).status_code == 200
    assert session.get(f"{portal}/wikis/new/", timeout=10).status_code == 200  # ops create too


def test_logout_ends_the_portal_and_the_provider_session(portal, identity_provider):
    identity_provider.set_user("erin", "erin-pw", ["farm-auditors"])
    session, _ = sign_in(portal, identity_provider, "erin", "erin-pw")
    assert session.get(f"{portal}/ops/audit/", timeout=10).status_code == 200

    back = sign_out(portal, session)

    assert back.url == f"{portal}/login/"
    assert session.get(f"{portal}/ops/audit/", timeout=10).url.startswith(f"{portal}/login/")
    # The provider forgot erin too: signing in again asks for the password.
    again = session.get(f"{portal}/oidc/authenticate/", timeout=10)
    assert again.url.startswith(f"{identity_provider.url}/interaction/")
    assert 'name="password"' in again.text


def test_a_wrong_password_is_refused(portal, identity_provider):
    identity_provider.set_user("frank", "frank-pw", ["farm-admins"])

    session, answer = sign_in(portal, identity_provider, "frank", "guess")

    assert answer.status_code == 401 and "Wrong user name or password" in answer.text
    assert session.get(f"{portal}/wikis/", timeout=10).url.startswith(f"{portal}/login/")
    assert not get_user_model().objects.filter(username="frank").exists()


def test_local_password_login_is_off_when_oidc_is_on(portal, identity_provider, admin_user_a):
    session = requests.Session()
    page = session.get(f"{portal}/login/", timeout=10)
    assert "Demo login" not in page.text and 'name="password"' not in page.text
    refused = session.post(
        f"{portal}/login/",
        data={
            "username": "alice",
            "password": "pw-alice",
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
        },
        timeout=10,
    )
    assert refused.status_code in (403, 405)
    assert session.get(f"{portal}/wikis/", timeout=10).url.startswith(f"{portal}/login/")
