# The product's image for docker compose: PostgreSQL, Kafka, the Spark master and workers, the
# stream job, the producer and the one-shot init all run from it, with the same entrypoints as
# `make up` (heartbeat-ops, spark-jobs/submit.sh, heartbeat-producer). Superset has its own image
# (superset/Dockerfile). Both start from BASE_IMAGE: no registry is needed, `docker/host.sh
# base-image` makes debian:bookworm-slim with debootstrap.
#
# Layer order: system packages, then jars (ops/maven/*.pom.xml), then the Python dependencies
# (pyproject.toml), then the code: a code change rebuilds only the last, small layers.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# No service may start at package install time; no Debian "main" cluster (we initdb our own).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
# Optional extra CAs (docker/ca/README.md), trusted before Java so its truststore gets them too.
COPY docker/trust-extra-ca.sh /usr/local/sbin/
COPY docker/ca/ /usr/local/share/heartbeat-extra-ca/
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && sh /usr/local/sbin/trust-extra-ca.sh /usr/local/share/heartbeat-extra-ca \
 && rm -rf /var/lib/apt/lists/*
# The native stack's Debian packages (ops/install.sh), with Debian's Python 3.11.
# (openssl, which makes the device listener's CA and key pair, comes with ca-certificates.)
RUN apt-get update && apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless postgresql-15 python3 python3-venv procps util-linux \
 && rm -rf /var/lib/apt/lists/*

# The project's runtime dependencies, out of pyproject.toml: the layer that installs them is
# rebuilt only when this list changes, not on every edit of pyproject.toml.
FROM runtime AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' > /requirements.txt

# Kafka's broker and the Spark connector jars, resolved by Maven as ops/install.sh does.
FROM runtime AS jars
RUN apt-get update && apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
COPY ops/maven/ /build/
RUN mvn -q -B -f /build/kafka-broker.pom.xml dependency:copy-dependencies \
      -DoutputDirectory=/jars/kafka -DincludeScope=runtime \
 && mvn -q -B -f /build/spark-connector.pom.xml dependency:copy-dependencies \
      -DoutputDirectory=/jars/spark -DincludeScope=runtime \
      -DincludeArtifactIds=spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,kafka-clients,commons-pool2,postgresql \
 && rm -rf /root/.m2

FROM runtime AS app
RUN useradd --system --uid 10001 --create-home --home-dir /home/heartbeat heartbeat
# HEARTBEAT_VAR_DIR's layout as `make install` makes it, with the installs under /opt/heartbeat.
# Folders a volume is mounted on are made here, owned by the user who writes them: a new named
# volume takes the owner of the folder it is mounted on.
RUN mkdir -p /var/lib/heartbeat/build /var/lib/heartbeat/checkpoints /var/lib/heartbeat/kafka \
      /var/lib/heartbeat/data/kafka /var/lib/heartbeat/data/postgres \
      /var/lib/heartbeat/data/postgres-replica /opt/heartbeat \
 && ln -s /opt/heartbeat/jars /var/lib/heartbeat/jars \
 && chown heartbeat:heartbeat /var/lib/heartbeat/build /var/lib/heartbeat/checkpoints \
      /var/lib/heartbeat/kafka /var/lib/heartbeat/data/kafka \
 && chown postgres:postgres /var/lib/heartbeat/data/postgres \
      /var/lib/heartbeat/data/postgres-replica \
 && chmod 700 /var/lib/heartbeat/data/postgres /var/lib/heartbeat/data/postgres-replica
COPY --from=jars /jars /opt/heartbeat/jars
ENV PATH=/opt/heartbeat/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies only: this layer survives code changes.
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/heartbeat/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install -q setuptools==80.9.0 -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
# The device listener's CA and key pair (the kafka service's kafka-tls volume): the broker's user
# writes them, nobody else reads them.
RUN mkdir -p /var/lib/heartbeat/tls && chown heartbeat:heartbeat /var/lib/heartbeat/tls \
 && chmod 700 /var/lib/heartbeat/tls
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY producer/ producer/
COPY spark-jobs/ spark-jobs/
COPY ops/ ops/
COPY notifier/ notifier/
COPY sql/ sql/
# The code itself, editable like `make install` (heartbeat_ops finds sql/ next to it): no network.
RUN pip install -q --no-deps --no-build-isolation -e . && chmod -R a+rX /app
ENV HEARTBEAT_VAR_DIR=/var/lib/heartbeat \
    HEARTBEAT_SPARK_JARS_DIR=/opt/heartbeat/jars/spark \
    HEARTBEAT_CHECKPOINT_DIR=/var/lib/heartbeat/checkpoints/stream \
    SPARK_SUBMIT=/opt/heartbeat/venv/bin/spark-submit \
    PYSPARK_PYTHON=/opt/heartbeat/venv/bin/python
# The entrypoint reads the root-only secrets file (if mounted), then drops to HEARTBEAT_RUN_AS.
ENTRYPOINT ["/app/ops/with-secrets.sh"]
CMD ["heartbeat-ops", "--help"]
