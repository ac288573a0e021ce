# botwire serve in a container: the embedded SQLite store on the volume /data, tokens required.
#   docker build -t botwire .
#   docker run -d -p 8765:8765 -v botwire-data:/data --name botwire botwire
#   docker exec botwire botwire token create admin --prefix '*' --admin
ARG PYTHON_IMAGE=python:3.12-slim

# -- build: the project and its server dependencies as wheels -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY botwire ./botwire
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels '.[server,postgres]'

# -- run: the wheels installed, nothing else of the build ------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin botwire \
    && mkdir -p /data && chown botwire:botwire /data
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels 'botwire[server,postgres]' \
    && rm -rf /wheels
USER botwire
WORKDIR /data
ENV PYTHONUNBUFFERED=1 \
    BOTWIRE_DB=sqlite:////data/botwire.db \
    BOTWIRE_HOST=0.0.0.0 \
    BOTWIRE_PORT=8765 \
    BOTWIRE_REQUIRE_TOKENS=true
VOLUME ["/data"]
EXPOSE 8765
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('BOTWIRE_PORT', '8765'), timeout=2)"]
# SIGTERM: the server stops accepting, answers what it was sent (shutdown_grace_seconds), exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["botwire"]
CMD ["serve"]
