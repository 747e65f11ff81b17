"""The credentials a lab or test cluster runs with, made the way production makes them.

One password file per database user (mode 0600) and a private CA with the members'
certificate, in a directory of their own. Users are created by initiating through the
localhost exception, then by `hubctl init-replset --create-users`' own code path
(hubctl.init_access), never by a side door. Every client the lab or a test opens logs in as
one of hub.db_roles' users over TLS checked against that CA.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shlex
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pymongo

from hub.db_roles import ADMIN_USER
from hub.db_users import (
    create_first_user,
    ensure_roles_and_users,
    read_user_passwords,
    user_names,
)
from hub.mongo import access_as, current_access, use_access
from hub.mongo_access import (
    ENV_PASSWORD_FILE,
    ENV_TLS_CA_FILE,
    ENV_USER,
    MongoAccess,
    read_password_file,
)
from hub.replset import ReplicaSet
from hubctl.init_access import OPERATOR_USER, initiate_with_users
from hubctl.lab.standin.tls import TlsFiles, make_private_ca


class ClusterCredentials:
    """Password files and a private CA in `directory` (a temporary one, removed by close(),
    when none is given). auth=False or tls=False leave that part out: the open mode.

    Clusters of one process share shared()'s by default: then the process's one identity
    (hub.mongo.use_access) is good for every cluster it runs, e.g. two labs in one test
    session. Each cluster still has its own users, made by its own initiate.
    """

    _shared: ClusterCredentials | None = None

    def __init__(self, directory: Path | None = None, auth: bool = True, tls: bool = True) -> None:
        self._owned = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="hubcluster-db-")) if directory is None else directory
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.auth = auth
        self.passwords_dir = self.directory / "passwords"
        if auth:
            self.passwords_dir.mkdir(mode=0o700, exist_ok=True)
            for name in user_names():
                path = self.passwords_dir / name
                if not path.exists():
                    path.touch(mode=0o600)
                    path.write_text(secrets.token_urlsafe(18) + "\n")
        self.tls_files: TlsFiles | None = self._tls_files() if tls else None

    def _tls_files(self) -> TlsFiles:
        """The CA kept in the directory (a lab run again, another process of the same
        cluster), else a new one."""
        directory = self.directory / "tls"
        kept = TlsFiles(directory / "ca.pem", directory / "member.pem", directory / "member.key")
        if all(path.exists() for path in (kept.ca_file, kept.cert_file, kept.key_file)):
            return kept
        return make_private_ca(directory)

    @property
    def ca_file(self) -> Path | None:
        return self.tls_files.ca_file if self.tls_files else None

    def password_file(self, user: str) -> Path:
        return self.passwords_dir / user

    def access(self, user: str | None = OPERATOR_USER) -> MongoAccess | None:
        """`user`'s access (None: no user, TLS only); None in the fully open mode."""
        if not self.auth or user is None:
            return MongoAccess(tls_ca_file=self.ca_file) if self.ca_file else None
        password = read_password_file(self.password_file(user))
        return MongoAccess(user, password, tls_ca_file=self.ca_file)

    def env(self, user: str | None = OPERATOR_USER) -> dict[str, str]:
        """What a hubctl or hubd child needs in its environment to be `user`."""
        env: dict[str, str] = {}
        if self.auth and user is not None:
            env[ENV_USER] = user
            env[ENV_PASSWORD_FILE] = str(self.password_file(user))
        if self.ca_file is not None:
            env[ENV_TLS_CA_FILE] = str(self.ca_file)
        return env

    def env_file(self, user: str = OPERATOR_USER) -> Path:
        """A file to source in a shell (`. FILE`) to run hubctl as `user`: no password in it,
        only where the password file is."""
        path = self.directory / f"{user}.env"
        path.write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env(user).items())
        )
        return path

    def config_lines(self, user: str = "hubd", password_file: Path | None = None) -> str:
        """A hub config's [replset] access lines for `user` (after its uri line)."""
        lines = []
        if self.auth:
            file = password_file or self.password_file(user)
            lines += [f'username = "{user}"', f'password_file = "{file}"']
        if self.ca_file is not None:
            lines.append(f'tls_ca_file = "{self.ca_file}"')
        return "".join(line + "\n" for line in lines)

    def client_kwargs(self, user: str | None = OPERATOR_USER) -> dict[str, Any]:
        access = self.access(user)
        return access.client_kwargs() if access is not None else {}

    def client(
        self, uri: str, user: str | None = OPERATOR_USER, member: str | None = None, **kwargs: Any
    ) -> pymongo.MongoClient:
        """A client of the set at `uri` (or straight to `member`) logged in as `user`."""
        options: dict[str, Any] = {"serverSelectionTimeoutMS": 10_000}
        options.update(self.client_kwargs(user))
        options.update(kwargs)
        if member is not None:
            return pymongo.MongoClient(f"mongodb://{member}/", directConnection=True, **options)
        return pymongo.MongoClient(uri, **options)

    def initiate(
        self,
        uri: str,
        hosts: list[str],
        set_name: str,
        election_timeout_ms: int | None = None,
        hub_names: dict[str, str] | None = None,
        priorities: dict[str, float] | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Initiate the set with `hosts` and create the users as init-replset does; the
        process's access (hub.mongo) is left as it was. Returns the initiate outcome."""

        def initiate(rs: ReplicaSet, record: bool) -> str:
            return rs.initiate(
                hosts, set_name, priorities, election_timeout_ms, 30.0, hub_names, record=record
            )

        previous = current_access()
        try:
            use_access(self.access(None))
            if not self.auth:
                rs = ReplicaSet(uri, timeout)
                try:
                    return initiate(rs, True)
                finally:
                    rs.close()
            passwords = read_user_passwords(self.passwords_dir)
            outcome, _ = initiate_with_users(uri, timeout, passwords, initiate, hosts, set_name)
            return outcome
        finally:
            use_access(previous)

    def create_users(self, uri: str, timeout: float = 10.0) -> None:
        """The users of a set initiated by hand (through the localhost exception): the second
        half of init-replset --create-users, the same functions."""
        passwords = read_user_passwords(self.passwords_dir)
        with access_as(self.access(None)):
            create_first_user(uri, passwords[ADMIN_USER.name], timeout)
        with access_as(self.access(ADMIN_USER.name)):
            ensure_roles_and_users(uri, passwords, timeout)

    @classmethod
    def shared(cls) -> ClusterCredentials:
        """This process's default credentials (access control and TLS), removed when the
        process that made them exits (not a forked child)."""
        if cls._shared is None:
            made = cls()
            made._owned = False  # outlives every cluster that uses it
            creator = os.getpid()

            def remove() -> None:
                if os.getpid() == creator:
                    shutil.rmtree(made.directory, ignore_errors=True)

            atexit.register(remove)
            cls._shared = made
        return cls._shared

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)


class CredentialedCluster(ABC):
    """What a test or the lab needs to connect to a cluster (StandinCluster, MongodCluster)
    as one of hub.db_roles' users; the cluster sets `credentials` and has uri/hosts."""

    credentials: ClusterCredentials
    set_name: str

    @property
    @abstractmethod
    def uri(self) -> str: ...

    @property
    @abstractmethod
    def hosts(self) -> list[str]: ...

    def member_name(self, member: str | int) -> str:
        return self.hosts[member] if isinstance(member, int) else member

    @property
    def ca_file(self) -> Path | None:
        return self.credentials.ca_file

    @property
    def passwords_dir(self) -> Path:
        """One password file per user: what `hubctl init-replset --create-users` takes."""
        return self.credentials.passwords_dir

    def password_file(self, user: str) -> Path:
        return self.credentials.password_file(user)

    def access(self, user: str | None = OPERATOR_USER) -> MongoAccess | None:
        return self.credentials.access(user)

    def env(self, user: str | None = OPERATOR_USER) -> dict[str, str]:
        """HUBCLUSTER_MONGO_USER/_PASSWORD_FILE/_TLS_CA_FILE for a hubctl or hubd child."""
        return self.credentials.env(user)

    def client(
        self, user: str | None = OPERATOR_USER, member: str | int | None = None, **kwargs: Any
    ) -> pymongo.MongoClient:
        """A pymongo client of the set (or straight to `member`) logged in as `user`."""
        name = None if member is None else self.member_name(member)
        return self.credentials.client(self.uri, user, name, **kwargs)

    def replset_section(self, user: str = "hubd") -> str:
        """A hub config's whole [replset] table: this set, logged in as `user` over TLS."""
        return f'[replset]\nuri = "{self.uri}"\n' + self.credentials.config_lines(user)

    def initiate(
        self,
        hosts: list[str] | None = None,
        election_timeout_ms: int | None = None,
        hub_names: dict[str, str] | None = None,
        priorities: dict[str, float] | None = None,
    ) -> str:
        """Initiate as init-replset --create-users does: through the localhost exception,
        then the users. `hosts` default to every member; hub names to hub1, hub2, ..."""
        hosts = list(hosts or self.hosts)
        if hub_names is None:
            hub_names = {host: f"hub{i}" for i, host in enumerate(hosts, 1)}
        return self.credentials.initiate(
            self.uri, hosts, self.set_name, election_timeout_ms, hub_names, priorities
        )
