# The product's image for docker compose: producer, streaming job and provisioning run the same
# entrypoints as `make up` (heartbeat-producer, spark-jobs/submit.sh, heartbeat-ops).

FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY ops/maven/ ops/maven/
# Only what the pyspark wheel lacks: the Kafka source and the PostgreSQL JDBC driver.
RUN mvn -q -B -f ops/maven/spark-connector.pom.xml dependency:copy-dependencies \
      -DoutputDirectory=/jars/spark -DincludeScope=runtime \
      -DincludeArtifactIds=spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,kafka-clients,commons-pool2,postgresql

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app heartbeat
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producer/ producer/
COPY spark-jobs/ spark-jobs/
COPY ops/ ops/
COPY sql/ sql/
RUN pip install --no-cache-dir -e .
COPY --from=jars /jars /jars
ENV HEARTBEAT_VAR_DIR=/var/lib/heartbeat \
    HEARTBEAT_RUN_AS=heartbeat \
    HEARTBEAT_SPARK_JARS_DIR=/jars/spark \
    HEARTBEAT_CHECKPOINT_DIR=/var/lib/heartbeat/checkpoints \
    SPARK_SUBMIT=spark-submit \
    PYSPARK_PYTHON=python3
# Checkpoints get a volume of their own, owned by the unprivileged user; the entrypoint starts
# as root only to read the secrets file, then drops to HEARTBEAT_RUN_AS.
RUN mkdir -p /var/lib/heartbeat/checkpoints && chown heartbeat /var/lib/heartbeat/checkpoints
ENTRYPOINT ["/app/ops/with-secrets.sh"]
