# minibert serve in a container: the embedding server, with the int8 model bundled in the
# package by default and any model folder in Hugging Face layout mounted at run time.
#
#   docker build -t minibert-serve .
#   docker run --rm -p 127.0.0.1:8000:8000 --cpus 2 --memory 1g minibert-serve
#   docker run --rm -p 127.0.0.1:8000:8000 --cpus 2 --memory 1g \
#       -v /path/to/all-MiniLM-L6-v2:/models/minilm:ro -e MINIBERT_MODEL=/models/minilm \
#       minibert-serve
#
# Settings by environment: MINIBERT_MODEL (a folder inside the container; empty: the bundled
# model), MINIBERT_PORT (8000), MINIBERT_API_KEY (unset: no key; the server reads it itself, so
# the key stays out of the process list), MINIBERT_ARGS (more options for `minibert serve`,
# e.g. "--workers 2 --max-batch-tokens 8192"). Or replace the command:
#   docker run ... minibert-serve minibert serve /models/minilm --host 0.0.0.0 --workers 2
# Thread pools follow the container's CPU quota (--cpus), read by the server at start.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from; .gitignore tells the build backend what to leave out
# (there is no .git in the build context).
WORKDIR /src
COPY pyproject.toml README.md .gitignore ./
COPY minibert ./minibert
RUN pip install ".[serve]" && rm -rf /src

# An unprivileged user; Numba's compiled kernels and the server's self-check records are
# cached in its home.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin minibert
USER minibert
WORKDIR /home/minibert
ENV NUMBA_CACHE_DIR=/home/minibert/.cache/numba \
    MINIBERT_MODEL="" \
    MINIBERT_PORT=8000 \
    MINIBERT_ARGS=""

# Compile the kernels once at build time, so that a container starts in seconds (Numba
# compiles again, once, if the host's CPU differs from the build machine's).
RUN minibert encode --kernels fast "the kernels compile once, at build time" > /dev/null

EXPOSE 8000

# /ready answers 200 once the model is loaded and its self-check passed (no API key needed);
# slim has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ['MINIBERT_PORT'] + '/ready', timeout=4)"]

# 0.0.0.0 inside the container only: publish the port on the host's loopback (-p 127.0.0.1:...)
# or behind a proxy. exec, so that the server gets SIGTERM and drains its queue on `docker stop`.
CMD ["sh", "-c", "exec minibert serve $MINIBERT_MODEL --host 0.0.0.0 --port \"$MINIBERT_PORT\" $MINIBERT_ARGS"]
