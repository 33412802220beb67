FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000
COPY pyproject.toml setup.cfg README.md Procfile ./
COPY web web
COPY workers workers
COPY sagas sagas
COPY models models
COPY common common
COPY petstore petstore
RUN pip install --no-cache-dir . && useradd --create-home petstore && mkdir -p /data/uploads \
    && chown -R petstore /data
USER petstore
EXPOSE 8000 5555
CMD ["gunicorn", "-c", "python:petstore.gunicorn_conf", "web:create_app()"]
