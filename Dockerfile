# The bot and its payment backend in one image: `docker build -t tariff-bot .`, or
# `docker compose up` (compose.yaml adds PostgreSQL). Settings come from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Never run as root; data/ holds the SQLite file when DATABASE_URL is left at its default.
RUN useradd --system --uid 10001 --no-create-home bot \
    && mkdir -p /app/data && chown bot:bot /app/data
USER bot

EXPOSE 8080
# /health answers 200 after a real database round trip, 503 when the database is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health', timeout=4)"]
CMD ["python", "-m", "web"]
