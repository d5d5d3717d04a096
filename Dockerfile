# syntax=docker/dockerfile:1
# One image for both services: `python -m gateway` (the default) or `python -m persister`.
# It also carries the operators' `duet-admin` (and the users' `duet`), so operators can run
# `docker compose run --rm admin audit tail` with the ops account (docs/operations.md).

# --- build: install duet and its dependencies into a virtualenv -------------------------
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/duet
WORKDIR /src
COPY requirements/runtime.lock ./requirements/
# The exact versions and hashes of requirements/runtime.lock, then duet alone.
RUN /opt/duet/bin/pip install --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY service ./service
COPY broker ./broker
COPY gateway ./gateway
COPY persister ./persister
COPY client ./client
COPY admin ./admin
# Not editable: the runtime stage gets the venv alone, without /src.
RUN /opt/duet/bin/pip install --no-deps .

# --- runtime: the venv, a non-root user, nothing else ----------------------------------
FROM python:3.11.13-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 duet \
 && useradd --system --uid 10001 --gid duet --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin duet
COPY --from=build /opt/duet /opt/duet
# The browser client the gateway serves at /: plain files, no build step. Installed packages
# do not carry it, so it is copied beside the venv and named by DUET_WEB_DIR.
COPY web /opt/duet/web
ENV PATH=/opt/duet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DUET_HOST=0.0.0.0 \
    DUET_PORT=8000 \
    DUET_WEB_DIR=/opt/duet/web
# Numeric, so an orchestrator can check that the user is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# The gateway's health; compose replaces it for the persister. With TLS on, the certificate
# names the public host, not 127.0.0.1, so it is not verified here.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD python -c "import os, ssl, urllib.request as r; tls = bool(os.environ.get('DUET_TLS_CERT')); \
r.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('DUET_PORT', '8000') \
+ '/healthz', timeout=2, context=ssl._create_unverified_context() if tls else None)"
CMD ["python", "-m", "gateway"]
