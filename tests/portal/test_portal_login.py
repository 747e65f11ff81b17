"""Issue 14, security: login, sessions, CSRF, throttling, tokens, headers, bad input.

Over real HTTP against the portals of a lab whose data the real writer produced.
"""

from __future__ import annotations

import subprocess

import httpx
from argon2 import PasswordHasher

from hub.config import parse_hub_config
from hubcluster.config_check import ConfigError, loads_toml
from hubctl.lab.child_commands import HUBD
from tests.conftest import wait_until
from tests.portal.conftest import browser, csrf_of, log_in


def test_pages_need_a_login_and_the_login_shows_the_master(portal_fleet):
    lab = portal_fleet.lab
    hub = lab.hubs[0]
    with browser(hub) as client:
        first = client.get("/")
        assert first.status_code == 303 and first.headers["location"].endswith("/login")
        done = log_in(client, "viewer", lab.portal.password)
        assert done.status_code == 303, done.text
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP in the lab; Secure comes with TLS
        master = portal_fleet.master()
        page = wait_until(
            lambda: (p := client.get("/")).status_code == 200 and master.name in p.text and p,
            20,
            0.2,
            "the overview",
        )
        assert f"Master: <strong>{master.name}</strong>" in page.text
        assert "Clients: 3" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text and "style=" not in page.text
        out = client.post("/logout", data={"csrf": csrf_of(page)})
        assert out.status_code == 303
        assert client.get("/").status_code == 303  # logged out: back to the login form


def test_a_wrong_password_is_refused_in_one_sentence(portal_fleet):
    with browser(portal_fleet.lab.hubs[0]) as client:
        refused = log_in(client, "admin", "not-the-password")
        assert refused.status_code == 401
        assert "wrong name or password" in refused.text
        unknown = log_in(client, "nobody", "whatever")
        assert unknown.status_code == 401 and "wrong name or password" in unknown.text


def test_every_form_post_needs_the_sessions_csrf_token(portal_fleet):
    lab = portal_fleet.lab
    with browser(lab.hubs[0]) as client:
        client.get("/login")
        bare = client.post("/login", data={"name": "admin", "password": lab.portal.password})
        assert bare.status_code == 403 and "CSRF" in bare.text
        forged = client.post(
            "/login", data={"csrf": "x" * 43, "name": "admin", "password": lab.portal.password}
        )
        assert forged.status_code == 403
        assert log_in(client, "admin", lab.portal.password).status_code == 303
        assert client.post("/logout", data={}).status_code == 403
        assert client.get("/").status_code == 200  # the forged logout did not log out


def test_a_forged_or_bad_session_gets_a_clear_4xx(portal_fleet):
    hub = portal_fleet.lab.hubs[1]
    with browser(hub) as client:
        client.cookies.set("hubportal", "eyJ1c2VyIjogImFkbWluIn0=.forged.signature")
        got = client.get("/")
        assert got.status_code == 401
        assert "not valid (expired or forged)" in got.text and "Traceback" not in got.text
    with browser(hub) as client:
        huge = client.post(
            "/login",
            content=b"a=" + b"x" * 100_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413 and "Traceback" not in huge.text


def test_api_answers_tokens_and_refuses_anyone_else(portal_fleet):
    lab = portal_fleet.lab
    url = f"{lab.hubs[1].portal_url}api/overview"
    nobody = httpx.get(url, timeout=10)
    assert nobody.status_code == 401 and "error" in nobody.json()
    wrong = httpx.get(url, headers={"authorization": "Bearer lab.wrong"}, timeout=10)
    assert wrong.status_code == 401
    token = {"authorization": f"Bearer {lab.portal.token}"}
    master = portal_fleet.master()
    hosts = httpx.get(f"{lab.hubs[1].portal_url}api/hosts", headers=token, timeout=10).json()
    active = [r for r in hosts["rows"] if not r["revoked"]]
    # The overview's compliance is the master's record after its latest round (a host
    # revoked by another test counts no more from the round after the revoke).
    body = wait_until(
        lambda: (
            (r := httpx.get(url, headers=token, timeout=10)).status_code == 200
            and r.json()["master"] == master.name
            and r.json()["compliance"]["reporting"] == len(active)
            and r.json()
        ),
        20,
        0.2,
        "the API overview",
    )
    assert {h["name"] for h in body["hubs"]} == {h.name for h in lab.hubs}
    assert body["clients"]["total"] == 3 and len(active) >= 1
    assert body["compliance"]["hosts"] == len(active)
    assert body["answered_by"]  # the member that answered the read


def test_failed_logins_are_throttled_per_user_and_per_address(portal_fleet):
    lab = portal_fleet.lab
    hub = lab.hubs[2]  # its throttle is its own; the other tests use the other hubs
    with browser(hub, "127.0.0.2") as attacker:
        codes = [log_in(attacker, "admin", f"guess{i}").status_code for i in range(5)]
        assert codes == [401] * 5
        blocked = log_in(attacker, "admin", lab.portal.password)
        assert blocked.status_code == 429 and "too many failed logins" in blocked.text
        assert log_in(attacker, "viewer", lab.portal.password).status_code == 429  # address
    with browser(hub, "127.0.0.3") as elsewhere:
        assert log_in(elsewhere, "admin", lab.portal.password).status_code == 429  # user
        assert log_in(elsewhere, "viewer", lab.portal.password).status_code == 303


def test_hash_password_makes_a_hash_the_config_accepts(tmp_path):
    made = subprocess.run(
        HUBD + ["hash-password"], input="s3cret\n", capture_output=True, text=True, timeout=30
    )
    assert made.returncode == 0, made.stderr
    digest = made.stdout.strip()
    assert PasswordHasher().verify(digest, "s3cret")
    base = (
        '[hub]\nname = "hub1"\n[replset]\nuri = "mongodb://h1:1"\n'
        '[[hubs]]\nname = "hub1"\nmongo = "h1:1"\nservice = "h1:2"\n[portal]\n'
    )
    users = f'[[portal.users]]\nname = "ops"\nrole = "admin"\npassword_hash = "{digest}"\n'
    config = parse_hub_config(loads_toml(base + users))
    assert config.portal.enabled and config.portal.users[0].name == "ops"
    for bad, words in (
        (users.replace(digest, "plaintext"), "not an argon2 hash"),
        (users.replace('"admin"', '"root"'), "viewer or admin"),
        (users + users, "duplicate portal name ops"),
    ):
        try:
            parse_hub_config(loads_toml(base + bad))
        except ConfigError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"accepted: {bad}")
    empty = subprocess.run(HUBD + ["hash-password"], input="\n", capture_output=True, text=True)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
