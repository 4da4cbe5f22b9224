# The production image: the official Airflow 3.3.2 image, the pinned runtime requirements and the
# governance package. Dev and test tools (requirements-dev.txt) never go in. Tests lint this file
# with hadolint (tests/unit/test_dockerfile_lint.py); no Docker engine is needed for that.
FROM apache/airflow:3.3.2-python3.11

# The image's convention: install Python packages as the airflow user, with apache-airflow pinned
# to the image's own version (requirements.txt pins apache-airflow==3.3.2). 50000 is that user's
# id in the official image; numeric, so Kubernetes' runAsNonRoot can check it.
# The period report's PDF (#13): WeasyPrint draws with Pango; a font for the text. Debian 12
# (bookworm, the image's base) versions, pinned.
USER 0
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0=1.50.12+ds-1 libpangoft2-1.0-0=1.50.12+ds-1 fonts-dejavu-core=2.37-6 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

USER 50000
WORKDIR /opt/airflow

COPY --chown=airflow:root requirements.txt ./requirements.txt
RUN pip install --no-cache-dir -r requirements.txt

# The library reads its SQL and policy files next to its code (include/sql, include/policies),
# so the package is installed in place from /opt/airflow/include. The development package
# include/governance_dev (the seed) is not in the build context (.dockerignore).
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root include/ ./include/
RUN pip install --no-cache-dir --no-deps -e .

COPY --chown=airflow:root dags/ ./dags/
COPY --chown=airflow:root plugins/ ./plugins/

ENV AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GOVERNANCE_POLICY=/opt/airflow/include/policies/photo_shop.yaml
