"""docker-compose.yml, the Dockerfile and docker/ kept right without a Docker engine.

No engine runs where the tests run, so these tests read the files instead: every service folder
(`services/*/config.yml`) has a container built from the one image, that container sets every
variable its config.yml reads, waits for a healthy broker (and database), has a health check;
the databases the containers name are the ones the PostgreSQL init script creates (and that
script runs, twice, on a real PostgreSQL); no secret is written in the compose file; the
health-check script tells a live service from a dead one; docs/deploy.md names every variable.

Everything is discovered from the files at run time: a new service folder with no container, or
a new `${VAR}` in a config.yml that the compose file does not set, fails here.
"""

from __future__ import annotations

import base64
import fnmatch
import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.runtime import catalogue
from shared.runtime.config import load_config_file
from shared.tools.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_SQL = ROOT / "docker" / "postgres-init.sql"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
RUN_SERVICE = ROOT / "docker" / "run-service.sh"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
BASE_CONFIG = ROOT / "services" / "base.yml"

BROKER, DATABASE = "rabbitmq", "postgres"
# What a config.yml reads: nameko's ${VAR} / ${VAR:default}.
VAR_READ = re.compile(r"\$\{([A-Z0-9_]+)")
# A top-level key whose whole value is one substitution: `DATABASE_URL: ${VISITS_DATABASE_URL:...}`.
TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):[ \t]*\$\{([A-Z0-9_]+)(?::([^}\n]*))?\}", re.M)
# Compose interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+x}.
COMPOSE_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
REQUIRED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$")
SECRET_NAME = re.compile(r"PASSWORD|_PASS$|SECRET|SIGNING_KEY|PRIVATE_KEY|API_KEY")
COMMENT = re.compile(r"(^|[ \t])#.*$", re.M)
CREATE_DATABASE = re.compile(r"CREATE\s+DATABASE\s+\"?([A-Za-z_][A-Za-z0-9_]*)\"?", re.I)


# -- reading the files ----------------------------------------------------------------------


def service_folders() -> list[str]:
    """Every service in the code: each folder of services/ with a config.yml."""
    return sorted(path.parent.name for path in (ROOT / "services").glob("*/config.yml"))


def config_text(service: str) -> str:
    """What the service's configuration reads: services/base.yml and its own config.yml
    (shared.runtime.config.load_config merges them), without comments (which may show
    `${VAR:default}`)."""
    text = "\n".join(path.read_text(encoding="utf-8")
                     for path in (BASE_CONFIG, ROOT / "services" / service / "config.yml"))
    return COMMENT.sub("", text)


def variables_read(service: str) -> set[str]:
    return set(VAR_READ.findall(config_text(service)))


def top_keys(service: str) -> dict[str, tuple[str, str | None]]:
    """config key -> (variable, default) for top-level keys set by one substitution."""
    return {key: (var, default) for key, var, default in TOP_KEY.findall(config_text(service))}


def http_services() -> list[str]:
    """Services that serve HTTP (nameko's WEB_SERVER_ADDRESS), like the gateway."""
    return [s for s in service_folders() if "WEB_SERVER_ADDRESS" in top_keys(s)]


def interpolate(value: str) -> str:
    """The value as Compose would make it with no variable set: defaults taken, and each
    required variable replaced by a visible stand-in (`required-NAME`)."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name, op, arg = m.group("braced") or m.group("named"), m.group("op"), m.group("arg")
        if op in (":-", "-"):
            return interpolate(arg)
        if op in (":?", "?"):
            return f"required-{name}"
        return ""  # unset, or ${VAR:+alt} of an unset VAR

    return COMPOSE_VAR.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves anchors and <<: merges
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), (
        "docker-compose.yml has no services"
    )
    return doc


def container(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name] or {}


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    """The container's `environment:` as a mapping (None: passed through from the host)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {k: (v if sep else None) for k, sep, v in pairs}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    """dependency -> condition (the short list form means service_started)."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def healthcheck_command(svc: dict[str, Any]) -> list[str]:
    check = svc.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test") or []
    if isinstance(test, str):
        return test.split()  # a string is run by the container's shell
    words = [str(part) for part in test]
    if words[:1] == ["NONE"]:
        return []
    if words[:1] == ["CMD-SHELL"]:
        return " ".join(words[1:]).split()
    return words[1:] if words[:1] == ["CMD"] else words


def build_of(svc: dict[str, Any]) -> tuple[Path, str] | None:
    """(context folder, Dockerfile) the service is built from, or None."""
    build = svc.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    return (COMPOSE.parent / build.get("context", ".")).resolve(), build.get("dockerfile",
                                                                             "Dockerfile")


def database_urls(svc: dict[str, Any]) -> dict[str, str]:
    """The container's *DATABASE_URL variables that are set to something."""
    env = environment(svc)
    return {k: v for k, v in env.items() if k.endswith("DATABASE_URL") and v}


def created_databases() -> set[str]:
    return set(CREATE_DATABASE.findall(INIT_SQL.read_text(encoding="utf-8")))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def workdir() -> PurePosixPath:
    dirs = [args for word, args in dockerfile_instructions() if word == "WORKDIR"]
    assert dirs, "the Dockerfile sets no WORKDIR (services run from the project root)"
    return PurePosixPath(dirs[-1])


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grassroots_docker_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- every service in the code has its container ---------------------------------------------


def test_the_services_are_found_in_the_code():
    # The discovery the other tests rely on: if it found nothing, they would check nothing.
    assert {"visits", "compliance", "gateway"} <= set(service_folders())


def test_the_catalogue_names_every_service_folder_and_nothing_else():
    # `grassroots up`, `status`, /healthz and the CLI go by the catalogue; Compose by the folders.
    assert set(catalogue.names()) == set(service_folders())
    for service in catalogue.SERVICES:
        assert service.module == f"services.{service.name}.service"
        assert set(service.reads) <= set(catalogue.names("write")), service.name


def test_a_service_config_overrides_the_base_and_names_itself_in_its_logs():
    base = load_config_file(BASE_CONFIG.parent / "gateway" / "config.yml")
    assert base["serializer"] == "json" and "cloudevents" in base["SERIALIZERS"]  # from base
    assert base["max_workers"] == 20  # its own
    assert " gateway " in base["LOGGING"]["formatters"]["plain"]["format"]
    assert "{service}" in BASE_CONFIG.read_text(encoding="utf-8")


def test_the_compose_file_follows_the_compose_specification(compose):
    assert "version" not in compose, "the Compose specification has no `version:` key"
    for name, svc in compose["services"].items():
        assert svc.get("image") or svc.get("build"), f"{name}: neither image nor build"
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes") or []:
            source = mount.get("source") if isinstance(mount, dict) else mount.split(":")[0]
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: named volume {source!r} is not declared"
            elif source and source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"


@pytest.mark.parametrize("service", service_folders())
def test_each_service_has_a_container_built_from_the_one_image(compose, service):
    svc = container(compose, service)
    assert build_of(svc) == (ROOT, "Dockerfile"), (
        f"{service}: not built from the project's Dockerfile (build: .)"
    )
    images = {
        str(s.get("image")) for n, s in compose["services"].items() if n in service_folders()
    }
    builds = {build_of(s) for n, s in compose["services"].items() if n in service_folders()}
    assert len(images) == 1 and len(builds) == 1, f"more than one image: {images} {builds}"


@pytest.mark.parametrize("service", service_folders())
def test_each_container_runs_its_own_service(compose, service):
    svc = container(compose, service)
    command = svc.get("command")
    if command:
        text = command if isinstance(command, str) else " ".join(map(str, command))
        assert f"services.{service}.service" in text, f"{service}: command runs another service"
    else:
        assert environment(svc).get("SERVICE") == service, (
            f"{service}: SERVICE must be {service!r}: the image's command runs the service it names"
        )
    assert "entrypoint" not in svc, f"{service}: an entrypoint would bypass the image's command"


def test_no_container_is_built_for_a_service_that_is_not_in_the_code(compose):
    built = {name for name, svc in compose["services"].items() if svc.get("build")}
    stale = built - set(service_folders())
    assert not stale, f"containers built from the image with no services/<name>/config.yml: {stale}"


@pytest.mark.parametrize("service", service_folders())
def test_each_container_has_a_health_check(compose, service):
    command = healthcheck_command(container(compose, service))
    assert command, f"{service} has no health check"
    for part in command:
        if part.startswith("docker/"):
            assert (ROOT / part).is_file(), f"{service}: health check runs missing {part}"


@pytest.mark.parametrize("service", service_folders())
def test_each_variable_the_config_reads_is_set_in_the_container(compose, service):
    env = environment(container(compose, service))
    missing = variables_read(service) - set(env)
    assert not missing, (
        f"services/{service}/config.yml reads {sorted(missing)}: set them in the "
        f"{service} container's environment in docker-compose.yml"
    )


@pytest.mark.parametrize(
    "service", [s for s in service_folders() if "DATABASE_URL" in top_keys(s)]
)
def test_each_container_keeps_its_data_in_postgresql_not_in_the_container(compose, service):
    keys = top_keys(service)
    var = keys["DATABASE_URL"][0]
    value = environment(container(compose, service)).get(var)
    assert value, f"{service}: {var} is empty: the service would use SQLite inside its container"
    assert urlsplit(interpolate(value)).scheme.startswith("postgresql"), (
        f"{service}: {var} is not a PostgreSQL URL"
    )


@pytest.mark.parametrize("service", service_folders())
def test_each_container_waits_for_a_healthy_broker_and_database(compose, service):
    svc = container(compose, service)
    deps = depends_on(svc)
    assert deps.get(BROKER) == "service_healthy", f"{service}: depends_on {BROKER} (healthy)"
    if database_urls(svc):
        assert deps.get(DATABASE) == "service_healthy", (
            f"{service} uses PostgreSQL: depends_on {DATABASE} (healthy)"
        )
    url = interpolate(environment(svc).get("AMQP_URI") or "")
    assert urlsplit(url).hostname == BROKER, f"{service}: AMQP_URI must name the {BROKER} host"


@pytest.mark.parametrize("service", http_services())
def test_http_services_listen_on_every_interface_and_publish_their_port(compose, service):
    svc = container(compose, service)
    var = top_keys(service)["WEB_SERVER_ADDRESS"][0]
    address = interpolate(environment(svc).get(var) or "")
    host, _, port = address.rpartition(":")
    assert host in ("0.0.0.0", "[::]"), (
        f"{service}: {var}={address!r} binds inside the container only; use 0.0.0.0:{port}"
    )
    targets = set()
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            targets.add(str(entry.get("target")))
        else:
            targets.add(interpolate(str(entry)).split("/")[0].rsplit(":", 1)[-1])
    assert port in targets, f"{service}: container port {port} is not published"


@pytest.mark.parametrize(
    "service", [s for s in service_folders() if any(k.endswith("_FILE") for k in top_keys(s))]
)
def test_files_a_service_writes_are_kept_in_a_volume(compose, service):
    svc = container(compose, service)
    env = environment(svc)
    mounts = []
    for mount in svc.get("volumes") or []:
        target = mount.get("target") if isinstance(mount, dict) else mount.split(":")[1]
        mounts.append(PurePosixPath(target))
    files = {key: var for key, (var, _) in top_keys(service).items() if key.endswith("_FILE")}
    for key, var in files.items():
        path = PurePosixPath(interpolate(env.get(var) or ""))
        path = path if path.is_absolute() else workdir() / path
        assert any(path.is_relative_to(m) for m in mounts), (
            f"{service}: {key} ({var}={path}) is not in a volume: lost when the container goes"
        )


# -- broker and database ---------------------------------------------------------------------


def test_rabbitmq_and_postgresql_are_there_with_health_checks(compose):
    rabbit, pg = container(compose, BROKER), container(compose, DATABASE)
    assert str(rabbit.get("image", "")).startswith("rabbitmq:")
    assert "management" in str(rabbit.get("image")), "the management image (its UI, its CLI)"
    assert healthcheck_command(rabbit)[:1] == ["rabbitmq-diagnostics"]
    assert str(pg.get("image", "")).startswith("postgres:")
    assert "pg_isready" in healthcheck_command(pg)
    mounts = [m if isinstance(m, str) else f"{m['source']}:{m['target']}"
              for m in pg.get("volumes") or []]
    assert any(m.startswith("./docker/postgres-init.sql:/docker-entrypoint-initdb.d/")
               for m in mounts), "postgres must run docker/postgres-init.sql on first start"
    for name in (BROKER, DATABASE):
        data = [m for m in container(compose, name).get("volumes") or []
                if isinstance(m, str) and not m.startswith(".")]
        assert data, f"{name} keeps its data in no named volume"


def test_each_database_a_container_names_is_created_by_the_init_script(compose):
    created = created_databases()
    pg_env = environment(container(compose, DATABASE))
    owner: dict[str, str] = {}
    for name in service_folders():
        for var, value in database_urls(container(compose, name)).items():
            url = urlsplit(interpolate(value))
            assert url.scheme.startswith("postgresql"), f"{name}: {var} is not PostgreSQL"
            assert url.hostname == DATABASE, f"{name}: {var} must name the {DATABASE} host"
            assert url.username == pg_env.get("POSTGRES_USER"), f"{name}: {var} user"
            database = url.path.lstrip("/")
            assert database in created, (
                f"{name}: {var} names database {database!r}, which docker/postgres-init.sql "
                "does not create"
            )
            assert owner.setdefault(database, name) == name, (
                f"database {database!r} is shared by {owner[database]} and {name}: "
                "each service has its own"
            )
    assert owner, "no container uses PostgreSQL"


def test_the_init_script_runs_on_postgresql_and_can_run_again(request):
    from tests.support.postgres import find_pg_bindir

    bindir = find_pg_bindir()
    psql = bindir / "psql" if (bindir / "psql").exists() else shutil.which("psql")
    assert psql, "psql is needed to run the init script (scripts/ensure-postgres.sh)"
    server = request.getfixturevalue("postgres")

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(server.port), "-U", "postgres", "-d", "postgres", "-At", *args],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def databases() -> set[str]:
        return set(run("-c", "SELECT datname FROM pg_database").split())

    before = databases()
    # The image's entrypoint makes POSTGRES_USER before it runs the script.
    run("-c", "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grassroots')"
              " THEN CREATE ROLE grassroots LOGIN; END IF; END $$")
    try:
        run("-f", str(INIT_SQL))
        run("-f", str(INIT_SQL))  # again, as after an upgrade that adds a service
        assert created_databases() <= databases()
    finally:
        for name in created_databases() - before:
            run("-c", f'DROP DATABASE IF EXISTS "{name}"')


# -- the image -------------------------------------------------------------------------------


def test_the_dockerfile_installs_the_project_and_checks_health():
    steps = dockerfile_instructions()
    words = [word for word, _ in steps]
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    installs = [i for i, (w, a) in enumerate(steps) if w == "RUN" and re.search(
        r"pip install\b[^&;]*\s\.(\s|$)", a)]
    assert installs, "the Dockerfile does not `pip install .` the project"
    copied = " ".join(a for w, a in steps[: installs[0]] if w == "COPY")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for needed in ["pyproject.toml", pyproject["project"].get("readme"), "shared/", "services/"]:
        assert needed and needed in copied, f"{needed} must be copied before `pip install .`"
    everything = " ".join(a for w, a in steps if w == "COPY")
    for needed in ("policy.yml", "docker/"):
        assert needed in everything, f"the image lacks {needed}"
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1] not in ("root", "0"), "the services must not run as root"
    assert "HEALTHCHECK" in words, "the image has no HEALTHCHECK"
    health = next(a for w, a in steps if w == "HEALTHCHECK")
    assert "NONE" not in health and "docker/healthcheck.py" in health
    envs = " ".join(a for w, a in steps if w == "ENV")
    assert "PYTHONWARNINGS=ignore::DeprecationWarning" in envs
    assert any(w == "CMD" and "docker/run-service.sh" in a for w, a in steps)


def test_the_entry_script_runs_the_service_the_way_grassroots_up_does():
    script = RUN_SERVICE.read_text(encoding="utf-8")
    assert script.startswith("#!/bin/sh")
    assert ('exec python -m shared.runtime.serve run --config "$config" '
            '"services.$service.service"') in script
    assert 'config="services/$service/config.yml"' in script
    assert RUN_SERVICE.stat().st_mode & 0o111, "docker/run-service.sh must be executable"


def test_the_build_context_holds_what_the_image_copies_and_no_secret():
    patterns = [p.strip().rstrip("/") for p in DOCKERIGNORE.read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert ".env" in patterns, ".env (the operator's secrets) must stay out of the image"
    for word, args in dockerfile_instructions():
        if word != "COPY":
            continue
        for source in [a for a in args.split()[:-1] if not a.startswith("--")]:
            source = source.rstrip("/")
            ignored = [p for p in patterns if fnmatch.fnmatch(source, p)]
            assert not ignored, f".dockerignore drops {source}, which the Dockerfile copies"
            assert (ROOT / source).exists(), f"the Dockerfile copies missing {source}"


# -- secrets ---------------------------------------------------------------------------------


def test_no_secret_is_written_in_the_compose_file(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"\b(ed25519|hmac):[A-Za-z0-9+/]{16,}", text), "a signing key in clear"
    for name, svc in compose["services"].items():
        for var, value in environment(svc).items():
            if value is None:
                continue
            if SECRET_NAME.search(var):
                assert REQUIRED.match(value), (
                    f"{name}: {var} must come from the operator's environment, required and "
                    f"without a default: ${{NAME:?message}}, not {value!r}"
                )
            password = urlsplit(value).password if "://" in value else None
            if password is not None:
                assert REQUIRED.match(password), (
                    f"{name}: {var} has a password in clear; use ${{POSTGRES_PASSWORD:?...}}"
                )


def test_the_signing_key_reaches_the_services_that_read_it(compose):
    readers = [s for s in service_folders() if "GRASSROOTS_SIGNING_KEY" in variables_read(s)]
    assert readers, "no service reads GRASSROOTS_SIGNING_KEY any more: update this test"
    for service in readers:
        value = environment(container(compose, service))["GRASSROOTS_SIGNING_KEY"]
        assert value and REQUIRED.match(value) and "GRASSROOTS_SIGNING_KEY" in value


# -- documentation ---------------------------------------------------------------------------


def test_deploy_doc_names_every_variable():
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    compose_vars = {m.group("braced") or m.group("named")
                    for m in COMPOSE_VAR.finditer(COMPOSE.read_text(encoding="utf-8"))
                    if not m.group("escaped")}
    config_vars = set().union(*(variables_read(s) for s in service_folders()))
    missing = sorted(v for v in compose_vars | config_vars if f"`{v}`" not in doc)
    assert not missing, f"docs/deploy.md does not document {missing}"
    assert "--scale" in doc


# -- broker users ----------------------------------------------------------------------------

RABBIT_DIR = ROOT / "docker" / "rabbitmq"
RABBIT_INIT = RABBIT_DIR / "init.sh"
TEMPLATE = RABBIT_DIR / "definitions.template.json"
OPERATOR = "operator"  # the CLI's container, logged in as the broker's operator user


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the compose file) of each bind mount."""
    out = {}
    for mount in svc.get("volumes") or []:
        if isinstance(mount, str) and mount.startswith("."):
            source, target = mount.split(":")[:2]
            out[target] = source
    return out


def test_the_broker_has_no_guest_and_imports_a_user_per_service(compose):
    rabbit = container(compose, BROKER)
    env = environment(rabbit)
    assert not {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"} & set(env), (
        "the default user would be an account with every right"
    )
    entry = [str(part) for part in rabbit.get("entrypoint") or []]
    bound = mounts(rabbit)
    script = next((p for p in entry if p.endswith("/init.sh")), None)
    assert script, "the rabbitmq container must start through docker/rabbitmq/init.sh"
    folder = str(PurePosixPath(script).parent)
    assert (COMPOSE.parent / bound[folder]).resolve() == RABBIT_DIR
    assert [str(part) for part in rabbit.get("command") or []] == [
        "docker-entrypoint.sh", "rabbitmq-server"], "init.sh must end in the image's entrypoint"
    conf = next(t for t, src in bound.items() if t.startswith("/etc/rabbitmq/conf.d/"))
    text = (COMPOSE.parent / bound[conf]).read_text(encoding="utf-8")
    loaded = re.search(r"^load_definitions\s*=\s*(\S+)", text, re.M)
    default_out = re.search(r'out="\$\{GRASSROOTS_DEFINITIONS:-([^}]+)\}"', RABBIT_INIT.read_text())
    assert loaded and default_out and loaded.group(1) == default_out.group(1)
    tmpfs = [str(t) for t in rabbit.get("tmpfs") or []]
    assert str(PurePosixPath(loaded.group(1)).parent) in tmpfs, "passwords only on a tmpfs"


@pytest.mark.parametrize("name", [*service_folders(), OPERATOR])
def test_each_container_logs_in_to_the_broker_as_its_own_user(compose, name):
    url = urlsplit(interpolate(environment(container(compose, name)).get("AMQP_URI") or ""))
    assert url.username == name and url.hostname == BROKER, f"{name}: AMQP_URI user {url.username}"
    variable = f"{name.upper()}_AMQP_PASSWORD"
    assert url.password == f"required-{variable}", f"{name}: the password must be ${{{variable}:?}}"
    assert REQUIRED.match(environment(container(compose, BROKER)).get(variable) or ""), (
        f"the broker needs {variable} to create the user {name}"
    )


def test_the_template_holds_exactly_the_users_brokerauth_grants():
    from shared.tools.brokerauth import GRANTS, compose_template

    assert TEMPLATE.read_text(encoding="utf-8") == compose_template(), (
        "regenerate: python -m shared.tools.brokerauth > docker/rabbitmq/definitions.template.json"
    )
    assert set(GRANTS) == {*service_folders(), OPERATOR}


def _init(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "ran"
    return subprocess.run(
        ["sh", str(RABBIT_INIT), "touch", str(marker)], text=True, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "GRASSROOTS_DEFINITIONS": str(tmp_path / "d" / "defs.json"),
             **env}, timeout=30, check=False)


def test_the_init_script_renders_the_users_with_the_passwords_it_is_given(tmp_path):
    import json
    import secrets

    from shared.tools.brokerauth import GRANTS, definitions

    passwords = {user: secrets.token_hex(24) for user in GRANTS}
    env = {f"{user.upper()}_AMQP_PASSWORD": secret for user, secret in passwords.items()}
    done = _init(tmp_path, env)
    assert done.returncode == 0 and (tmp_path / "ran").exists(), done.stderr
    out = tmp_path / "d" / "defs.json"
    assert json.loads(out.read_text()) == definitions(passwords, hashed=False)
    assert out.stat().st_mode & 0o077 == 0, "the rendered passwords must be the broker's only"
    for bad in ("", "has space", "quote'"):
        (tmp_path / "ran").unlink(missing_ok=True)
        done = _init(tmp_path, {**env, "VISITS_AMQP_PASSWORD": bad})
        assert done.returncode == 64 and "VISITS_AMQP_PASSWORD" in done.stderr
        assert not (tmp_path / "ran").exists(), "the broker must not start without its users"


def test_new_env_writes_every_broker_password(tmp_path):
    target = tmp_path / ".env"
    subprocess.run(["sh", str(ROOT / "docker" / "new-env.sh"), str(target)], check=True,
                   capture_output=True, timeout=30)
    written = dict(line.split("=", 1) for line in target.read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    needed = {m.group("braced") for m in COMPOSE_VAR.finditer(COMPOSE.read_text())
              if (m.group("braced") or "").endswith("_AMQP_PASSWORD")}
    assert needed and needed <= set(written)
    assert all(re.fullmatch(r"[0-9a-f]{48}", written[name]) for name in needed)
    required = {m.group("braced") for m in COMPOSE_VAR.finditer(COMPOSE.read_text())
                if (m.group("op") or "").endswith("?")}
    assert required <= set(written), f"new-env.sh must write {sorted(required - set(written))}"
    assert len(base64.b64decode(written["GRASSROOTS_PRINCIPAL_KEY"])) == 32


# -- the health-check script -----------------------------------------------------------------


@pytest.fixture(scope="module")
def health() -> ModuleType:
    return load_healthcheck()


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """A local HTTP server answering /healthz with whatever the test puts in the list."""
    answers: list[tuple[int, bytes]] = [(200, b'{"ok": true}')]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answers[-1] if self.path == "/healthz" else (404, b"")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"0.0.0.0:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


def test_the_health_check_reads_the_address_the_service_listens_on(health, monkeypatch):
    config = config_text("gateway")
    monkeypatch.setenv("GATEWAY_ADDRESS", "0.0.0.0:9123")
    assert health.config_value(config, "WEB_SERVER_ADDRESS") == "0.0.0.0:9123"
    monkeypatch.delenv("GATEWAY_ADDRESS")
    default = top_keys("gateway")["WEB_SERVER_ADDRESS"][1]
    assert health.config_value(config, "WEB_SERVER_ADDRESS") == default
    assert health.config_value(config_text("visits"), "WEB_SERVER_ADDRESS") is None


def test_the_health_check_asks_the_http_service_itself(health, http_server):
    address, answers = http_server
    assert health.http_healthy(address) is None
    answers.append((200, b'{"ok": false, "broker": "down"}'))
    assert "not ok" in health.http_healthy(address)
    answers.append((503, b"{}"))
    assert "503" in health.http_healthy(address)
    assert "unreachable" in health.http_healthy(f"127.0.0.1:{free_port()}")


def test_the_health_check_fails_when_the_broker_is_away(health, amqp_uri):
    assert "unreachable" in health.broker_reachable(f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    assert health.broker_reachable(amqp_uri) is None


def test_the_health_check_sees_whether_the_nameko_process_lives(health):
    service = f"probe{free_port()}"
    assert not health.nameko_running(service)
    # A process with the argv of
    # `python -m shared.runtime.serve run --config ... services.<name>.service`.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m",
                             "shared.runtime.serve",
                             "run", "--config", "x.yml", f"services.{service}.service"])
    try:
        deadline = time.monotonic() + 10
        while not health.nameko_running(service) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health.nameko_running(service)
    finally:
        proc.kill()
        proc.wait()
    assert not health.nameko_running(service)


def test_the_health_check_exits_non_zero_when_unhealthy(tmp_path):
    service = f"probe{free_port()}"
    folder = tmp_path / "services" / service
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text("AMQP_URI: ${AMQP_URI:amqp://127.0.0.1:1//}\n")

    def check(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(HEALTHCHECK)], cwd=tmp_path, text=True,
                              capture_output=True, env={"SERVICE": name, "PATH": "/usr/bin:/bin"},
                              timeout=30, check=False)

    done = check(service)
    assert done.returncode == 1 and "no `nameko run` process" in done.stdout, done.stdout
    done = check("nope")
    assert done.returncode == 1 and "names no service" in done.stdout, done.stdout
